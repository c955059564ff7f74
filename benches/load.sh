#!/usr/bin/env bash
# Load benchmark of http-bench-server: every mode, interleaved, for ROUNDS
# rounds; the server pinned to CPU 0 with one worker, wrk and the sink
# pinned to CPU 1;
# our tracer and the OpenTelemetry stack both export OTLP/HTTP to the same
# local sink. Reports requests/s, p50, p99 and peak RSS per mode as the
# median ratio to `bare` over the rounds. Stops every process it started.
#
#   benches/load.sh                      # defaults below
#   ROUNDS=5 DURATION=20 benches/load.sh
#   FRESH_IDS=1 benches/load.sh          # a new trace per request (wrk Lua)
#
# FRESH_IDS=1 gives every request new ids (benches/fresh_ids.lua) instead
# of the same two headers: more realistic, but wrk's Lua then costs enough
# that wrk, not the server, limits `bare` (see PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
URL_PATH=${URL_PATH:-/users/42}
MODES=${MODES:-"bare noop unsampled sampled otel-unsampled otel-sampled fastrace"}
OUT=${OUT:-target/load}

# shellcheck source=benches/common.sh
. benches/common.sh
if [ "${FRESH_IDS:-0}" = 1 ]; then
  wrk_headers=(-s benches/fresh_ids.lua)
else
  wrk_headers=(-H "$hdr1" -H "$hdr2")
fi
echo "sink: OTLP/HTTP 127.0.0.1:$http_port, UDP 127.0.0.1:$udp_port"

results="$OUT/results.tsv"
printf "round\tmode\trps\tp50_us\tp99_us\trss_kb\n" >"$results"
to_us() { # wrk latency like 1.23ms / 450.00us / 1.01s
  python3 -c 'import sys,re; v=sys.argv[1]; m=re.match(r"([0-9.]+)(us|ms|s)$",v); n=float(m.group(1)); print(n*{"us":1,"ms":1e3,"s":1e6}[m.group(2)])' "$1"
}

for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    port=$(free_port)
    taskset -c 0 "$bin/http-bench-server" --mode "$mode" --port "$port" --workers 1 >"$OUT/server-$mode.log" 2>&1 &
    spid=$!
    pids+=($spid)
    for _ in $(seq 100); do
      (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.05
    done
    url="http://127.0.0.1:$port$URL_PATH"
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s "${wrk_headers[@]}" "$url" >/dev/null
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${wrk_headers[@]}" "$url" >"$OUT/wrk-$round-$mode.txt"
    rps=$(awk '/^Requests\/sec/ {print $2}' "$OUT/wrk-$round-$mode.txt")
    p50=$(to_us "$(awk '$1=="50%" {print $2}' "$OUT/wrk-$round-$mode.txt")")
    p99=$(to_us "$(awk '$1=="99%" {print $2}' "$OUT/wrk-$round-$mode.txt")")
    rss=$(awk '/^VmHWM/ {print $2}' "/proc/$spid/status")
    kill "$spid"
    wait "$spid" 2>/dev/null || true
    printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$mode" "$rps" "$p50" "$p99" "$rss" | tee -a "$results"
  done
done

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
rounds = sorted({r["round"] for r in rows})
modes = list(dict.fromkeys(r["mode"] for r in rows))
get = {(r["round"], r["mode"]): r for r in rows}
print("\n| mode | req/s (median) | req/s / bare | p50 / bare | p99 / bare | peak RSS / bare |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for m in modes:
    ratios = {k: [] for k in ("rps", "p50_us", "p99_us", "rss_kb")}
    for rd in rounds:
        if (rd, m) in get and (rd, "bare") in get:
            for k in ratios:
                ratios[k].append(float(get[(rd, m)][k]) / float(get[(rd, "bare")][k]))
    rps = statistics.median(float(get[(rd, m)]["rps"]) for rd in rounds if (rd, m) in get)
    med = {k: statistics.median(v) for k, v in ratios.items()}
    print(f"| {m} | {rps:,.0f} | {med['rps']:.3f} | {med['p50_us']:.3f} | {med['p99_us']:.3f} | {med['rss_kb']:.3f} |")
PY
