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
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
URL_PATH=${URL_PATH:-/users/42}
MODES=${MODES:-"bare noop unsampled sampled otel-unsampled otel-sampled"}
OUT=${OUT:-target/load}

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed"; exit 1; }

cargo build -q --release -p benchmarks
bin=target/release
mkdir -p "$OUT"

pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The sink shares wrk's core, never the server's: the server's core is the
# resource being measured, and both stacks export to the same sink.
taskset -c 1 "$bin/bench-sink" >"$OUT/sink.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^UDP' "$OUT/sink.out" 2>/dev/null && break; sleep 0.1; done
http_port=$(awk '/^HTTP/ {print $2}' "$OUT/sink.out")
udp_port=$(awk '/^UDP/ {print $2}' "$OUT/sink.out")
export OTEL_SERVICE_NAME=http-bench-server
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$http_port"
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
echo "sink: OTLP/HTTP 127.0.0.1:$http_port, UDP 127.0.0.1:$udp_port"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
    hdr1="uber-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
    hdr2="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$url" >/dev/null
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$hdr1" -H "$hdr2" "$url" >"$OUT/wrk-$round-$mode.txt"
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
