#!/usr/bin/env bash
# Tail latency at a fixed request rate: p50 and p99 of http-bench-server per
# mode at FRACTION (default 0.8) of bare's peak rate, open loop, with the
# latency measured from each request's intended send time (http-load
# --rate: no coordinated omission).
#
# First bare's peak: a closed-loop http-load run (CONCURRENCY keep-alive
# connections, like benches/load.sh with wrk), the median of PEAK_RUNS
# runs of DURATION seconds. Then ROUNDS interleaved rounds of every mode in
# MODES, each a fresh server, a WARMUP-second run at the rate, then a
# DURATION-second measured run at the rate. The server is pinned to CPU 0
# with one worker; http-load and the sink (benches/common.sh: every stack
# exports to it) to CPU 1. Every request carries a sampled `uber-trace-id`
# and `traceparent`. Records per run: requests/s served, p50, p99, errors,
# the server's CPU time per request (user + system, exporter threads
# included) and how busy each core was; reports per mode the medians, p50
# and p99 over bare's (median of the per-round ratios), and the added CPU
# per request of each mode over the others'. The goal checked: sampling
# everything (`sampled`) within 15% of bare's p99.
#
#   benches/http_rate.sh                         # defaults below
#   ROUNDS=3 DURATION=6 benches/http_rate.sh
#   FRACTION=0.5 benches/http_rate.sh            # at half bare's peak
#   RATE=40000 benches/http_rate.sh              # a given rate, no peak run
#   MODES="bare unsampled sampled otel-unsampled otel-sampled" benches/http_rate.sh
#
# If CPU 1 is close to saturated (the cpu1 column), http-load itself was
# late: the latencies then include the load generator's own queueing.
# Stops every process it started; each http-load run is killed
# WARMUP+DURATION+30 s in.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-32}
FRACTION=${FRACTION:-0.8}
PEAK_RUNS=${PEAK_RUNS:-3}
RATE=${RATE:-}
TICK_US=${TICK_US:-500}
URL_PATH=${URL_PATH:-/users/42}
MODES=${MODES:-"bare sampled otel-sampled fastrace"}
OUT=${OUT:-target/http-rate}

# common.sh installs wrk when it is missing; these runs do not use it, so a
# stand-in satisfies its check (and is gone once it is sourced).
command -v wrk >/dev/null || wrk() { return 1; }
# shellcheck source=benches/common.sh
. benches/common.sh # the release build, cleanup trap, sink on CPU 1, OTEL_*, free_port, cpu_ticks, cores, busy
unset -f wrk
echo "sink: OTLP/HTTP 127.0.0.1:$http_port, UDP 127.0.0.1:$udp_port"

limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(w + d + 30) }')
hz=$(getconf CLK_TCK)

# A server on CPU 0 with one worker; sets spid. start MODE LOG
start() {
  local port
  port=$(free_port)
  taskset -c 0 "$bin/http-bench-server" --mode "$1" --port "$port" --workers 1 >"$2" 2>&1 &
  spid=$!
  pids+=("$spid")
  wait_up "$2" "http-bench-server --mode $1"
  url="http://127.0.0.1:$port$URL_PATH"
}

stop_server() {
  stop "$spid"
  forget "$spid"
}

# http-load on CPU 1 in the background (so the cleanup trap can stop it),
# bounded; its output in $2.   load SECONDS OUTFILE [ARGS...]
load() {
  local secs=$1 file=$2 lpid
  shift 2
  timeout "$limit" taskset -c 1 "$bin/http-load" --url "$url" --concurrency "$CONCURRENCY" \
    --duration "$secs" "$@" >"$file" 2>&1 &
  lpid=$!
  pids+=("$lpid")
  if ! wait "$lpid"; then
    forget "$lpid"
    echo "http-load failed:"
    cat "$file"
    exit 1
  fi
  forget "$lpid"
}

# One measured run against the server $spid: sets line, cpu (µs per
# request), b0 and b1 (how busy CPU 0 and CPU 1 were).
measured() { # measured OUTFILE [ARGS...]
  local file=$1 t0 t1 c0 c1 s0 s1
  shift
  s0=$(cores)
  c0=$(cpu_ticks "$spid")
  load "$DURATION" "$file" "$@"
  c1=$(cpu_ticks "$spid")
  s1=$(cores)
  line=$(grep '^calls=' "$file")
  cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v n="$(field calls)" 'BEGIN { printf "%.2f", c / hz * 1e6 / n }')
  b0=$(busy "$s0" "$s1" 0)
  b1=$(busy "$s0" "$s1" 1)
}

peak_tsv="$OUT/peak.tsv"
if [ -z "$RATE" ]; then
  echo "== bare's peak: closed loop, $CONCURRENCY connections, $PEAK_RUNS x ${DURATION}s"
  printf "run\trps\tp50_us\tp99_us\terrors\tcpu_us_per_req\tcpu0_busy\tcpu1_busy\n" >"$peak_tsv"
  start bare "$OUT/server-peak.log"
  load "$WARMUP" "$OUT/peak-warmup.txt"
  for run in $(seq "$PEAK_RUNS"); do
    measured "$OUT/peak-$run.txt"
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$run" "$(field rps)" "$(field p50_us)" "$(field p99_us)" \
      "$(field errors)" "$cpu" "$b0" "$b1" | tee -a "$peak_tsv"
  done
  stop_server
  peak=$(cut -f2 "$peak_tsv" | tail -n +2 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  RATE=$(awk -v p="$peak" -v f="$FRACTION" 'BEGIN { printf "%d", p * f }')
  echo "bare's peak (median): $peak requests/s; the rate: $FRACTION of it = $RATE requests/s"
else
  printf "run\trps\n-\t%s\n" "$(awk -v r="$RATE" -v f="$FRACTION" 'BEGIN { print r / f }')" >"$peak_tsv"
  echo "the rate: $RATE requests/s (given)"
fi

n_modes=$(wc -w <<<"$MODES")
echo "$ROUNDS round(s) x $n_modes mode(s) at $RATE requests/s, about $(awk -v r="$ROUNDS" -v m="$n_modes" -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(r * m * (w + d + 1)) }') s"
results="$OUT/results.tsv"
printf "round\tmode\trps\tp50_us\tp99_us\terrors\tcpu_us_per_req\tcpu0_busy\tcpu1_busy\n" >"$results"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    start "$mode" "$OUT/server-$round-$mode.log"
    load "$WARMUP" "$OUT/warmup-$round-$mode.txt" --rate "$RATE" --tick-us "$TICK_US"
    measured "$OUT/rate-$round-$mode.txt" --rate "$RATE" --tick-us "$TICK_US"
    stop_server
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$mode" "$(field rps)" "$(field p50_us)" \
      "$(field p99_us)" "$(field errors)" "$cpu" "$b0" "$b1" | tee -a "$results"
  done
done

python3 - "$results" "$peak_tsv" "$RATE" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
peak = list(csv.DictReader(open(sys.argv[2]), delimiter="\t"))
rate = float(sys.argv[3])
rounds = sorted({r["round"] for r in rows}, key=int)
modes = list(dict.fromkeys(r["mode"] for r in rows))
get = {(r["round"], r["mode"]): r for r in rows}
med = lambda xs: statistics.median(xs) if xs else float("nan")

def col(m, k):
    return [float(get[(rd, m)][k]) for rd in rounds if (rd, m) in get]

def ratio(m, k, base="bare"):
    return med([float(get[(rd, m)][k]) / float(get[(rd, base)][k])
                for rd in rounds if (rd, m) in get and (rd, base) in get])

if peak and "cpu0_busy" in peak[0]:
    p = med([float(r["rps"]) for r in peak])
    print(f"\nbare's closed-loop peak: {p:,.0f} requests/s (median of {len(peak)}; CPU 0 busy "
          f"{med([float(r['cpu0_busy']) for r in peak]):.0%}, CPU 1 busy {med([float(r['cpu1_busy']) for r in peak]):.0%}); "
          f"the rate: {rate:,.0f} requests/s")
print("\n| mode | req/s served | p50 µs | p99 µs | p50 / bare | p99 / bare | p99 range / bare | server CPU µs/req | errors | CPU 0 busy | CPU 1 busy |")
print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
for m in modes:
    errs = sum(int(get[(rd, m)]["errors"]) for rd in rounds if (rd, m) in get)
    rs = sorted(float(get[(rd, m)]["p99_us"]) / float(get[(rd, "bare")]["p99_us"])
                for rd in rounds if (rd, m) in get and (rd, "bare") in get)
    rng = f"{rs[0]:.2f}–{rs[-1]:.2f}" if rs else "–"
    print(f"| {m} | {med(col(m, 'rps')):,.0f} | {med(col(m, 'p50_us')):.0f} | {med(col(m, 'p99_us')):.0f}"
          f" | {ratio(m, 'p50_us'):.2f} | {ratio(m, 'p99_us'):.2f} | {rng}"
          f" | {med(col(m, 'cpu_us_per_req')):.2f} | {errs} | {med(col(m, 'cpu0_busy')):.0%} | {med(col(m, 'cpu1_busy')):.0%} |")

# Added server CPU per request, ours over the others', per round then the median.
refs = [o for o in ("otel-sampled", "otel-unsampled", "fastrace") if o in modes]
ours = [m for m in modes if m in ("noop", "unsampled", "sampled")]
if "bare" in modes and ours and refs:
    print("\nAdded server CPU per request, (mode - bare) / (other - bare), median over the rounds:")
    print("| mode | vs | ratio |")
    print("| --- | --- | ---: |")
    for o in refs:
        for m in ours:
            v = []
            for rd in rounds:
                try:
                    b, x, r = (float(get[(rd, k)]["cpu_us_per_req"]) for k in ("bare", m, o))
                except KeyError:
                    continue
                if r != b:
                    v.append((x - b) / (r - b))
            print(f"| {m} | {o} | {med(v):.2f} |")

if "sampled" in modes and "bare" in modes:
    r = ratio("sampled", "p99_us")
    verdict = "met" if r <= 1.15 else "not met"
    # A verdict needs a steady baseline: if bare's own p99 moved by more
    # than 2x between rounds, its tail is the machine's, not the layer's.
    b = col("bare", "p99_us")
    if len(b) > 1 and max(b) > 2 * min(b):
        verdict = (f"undecided: bare's own p99 moved {max(b) / min(b):.1f}x between rounds"
                   f" ({min(b):.0f}–{max(b):.0f} µs)")
    print(f"\nGoal: sampling everything within 15% of bare's p99 at this rate: {r:.2f} -> {verdict}")
busy1 = med([float(r["cpu1_busy"]) for r in rows])
if busy1 > 0.9:
    print(f"\nNote: CPU 1 (http-load and the sink) was {busy1:.0%} busy: the load generator's own"
          " queueing is part of these latencies.")
PY
