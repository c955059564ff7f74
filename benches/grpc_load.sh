#!/usr/bin/env bash
# Load benchmark of grpc-bench-server: every mode, interleaved, for ROUNDS
# rounds; the server pinned to CPU 0 with one worker, grpc-load (one
# HTTP/2 connection, CONCURRENCY calls in flight, a sampled `traceparent`
# and `uber-trace-id` on every call) and the sink pinned to CPU 1; our
# tracer and the OpenTelemetry stack both export OTLP/HTTP to the same
# local sink (benches/common.sh). Per round and mode: a WARMUP-second run,
# then a DURATION-second measured run; records calls/s, p50, p99, errors,
# peak RSS (VmHWM) and the server's CPU time per call (its user + system
# time over the measured run, exporter threads included) in
# $OUT/results.tsv. Reports per mode the median and the median ratio to
# `bare`, and for our modes the added CPU per call relative to
# OpenTelemetry's: (bare/mode - 1) / (bare/otel - 1) on calls/s, and
# (mode - bare) / (otel - bare) on the measured CPU per call. Stops every
# process it started. Bounded: each run is killed WARMUP+DURATION+30 s in.
#
#   benches/grpc_load.sh                         # defaults below
#   ROUNDS=1 DURATION=3 benches/grpc_load.sh     # a smoke run
#   RATE=5000 benches/grpc_load.sh               # open loop, 5000 calls/s
#   MODES="bare sampled otel-sampled" benches/grpc_load.sh
#   UPSTREAM=1 benches/grpc_load.sh             # the client path too
#
# With UPSTREAM=1 a bare grpc-bench-server runs on CPU 1 as the upstream,
# and every measured server forwards each call to it through the mode's
# client instrumentation (`--upstream`): the CPU per call is then the
# server span's and the client span's together. fastrace (its official
# fastrace-tonic layers, Jaeger UDP reporter to the sink) is compared with
# the sampling-everything modes.
#
# Without RATE the load is closed-loop and the calls/s figures only mean
# "CPU per call" if the server's core is saturated: the cpu column shows
# its utilisation (below ~95% grpc-load, not the server, was the limit;
# the CPU-per-call figures hold either way). With RATE every mode serves
# the same calls/s, so compare latencies and CPU per call.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-32}
RATE=${RATE:-}
MODES=${MODES:-"bare noop unsampled sampled otel-unsampled otel-sampled fastrace"}
UPSTREAM=${UPSTREAM:-}
OUT=${OUT:-target/grpc-load}

# common.sh installs wrk when it is missing; gRPC runs do not use it, so a
# stand-in satisfies its check (and is gone once it is sourced).
command -v wrk >/dev/null || wrk() { return 1; }
# shellcheck source=benches/common.sh
. benches/common.sh # the release build (all of `benchmarks`), cleanup trap, sink, OTEL_*
unset -f wrk
export OTEL_SERVICE_NAME=grpc-bench-server
echo "sink: OTLP/HTTP 127.0.0.1:$http_port"

limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(w + d + 30) }')
n_modes=$(wc -w <<<"$MODES")
rate_args=()
loop="closed loop"
if [ -n "$RATE" ]; then
  rate_args=(--rate "$RATE")
  loop="open loop at $RATE calls/s"
fi
echo "$ROUNDS round(s) x $n_modes mode(s), about $(awk -v r="$ROUNDS" -v m="$n_modes" -v w="$WARMUP" -v d="$DURATION" 'BEGIN { print int(r * m * (w + d + 1)) }') s; $CONCURRENCY calls in flight, $loop"
hz=$(getconf CLK_TCK)

# grpc-load on CPU 1 in the background (so the cleanup trap can stop it),
# bounded; its output in $2.   load RUN_SECONDS OUTFILE URL
load() {
  local lpid
  timeout "$limit" taskset -c 1 "$bin/grpc-load" --target "$3" --concurrency "$CONCURRENCY" \
    --duration "$1" ${rate_args[@]+"${rate_args[@]}"} >"$2" 2>&1 &
  lpid=$!
  pids+=("$lpid")
  if ! wait "$lpid"; then
    forget "$lpid"
    echo "grpc-load failed ($mode, round $round):"
    cat "$2"
    exit 1
  fi
  forget "$lpid"
}

start_grpc_upstream
[ -z "$UPSTREAM" ] || echo "upstream: bare grpc-bench-server (CPU 1), ${upstream_args[1]}; Unary is forwarded to it"

results="$OUT/results.tsv"
printf "round\tmode\trps\tp50_us\tp99_us\terrors\trss_kb\tcpu_us_per_call\tcpu_util\n" >"$results"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    port=$(free_port)
    log="$OUT/server-$round-$mode.log"
    taskset -c 0 "$bin/grpc-bench-server" --mode "$mode" --port "$port" --workers 1 \
      ${upstream_args[@]+"${upstream_args[@]}"} >"$log" 2>&1 &
    spid=$!
    pids+=("$spid")
    wait_up "$log" "grpc-bench-server --mode $mode"
    url="http://127.0.0.1:$port"
    load "$WARMUP" "$OUT/warmup-$round-$mode.txt" "$url"
    t0=$(date +%s.%N)
    c0=$(cpu_ticks "$spid")
    load "$DURATION" "$OUT/load-$round-$mode.txt" "$url"
    c1=$(cpu_ticks "$spid")
    t1=$(date +%s.%N)
    rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$spid/status")
    kill "$spid"
    wait "$spid" 2>/dev/null || true
    forget "$spid"
    line=$(grep '^calls=' "$OUT/load-$round-$mode.txt")
    calls=$(field calls)
    cpu=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v n="$calls" 'BEGIN { printf "%.2f", c / hz * 1e6 / n }')
    util=$(awk -v c="$((c1 - c0))" -v hz="$hz" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", c / hz / (b - a) }')
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$mode" "$(field rps)" "$(field p50_us)" \
      "$(field p99_us)" "$(field errors)" "$rss" "$cpu" "$util" | tee -a "$results"
  done
done

python3 - "$results" "$RATE" <<'PY'
import csv, statistics, sys
open_loop = bool(sys.argv[2])  # every mode then serves the same calls/s
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
rounds = sorted({r["round"] for r in rows}, key=int)
modes = list(dict.fromkeys(r["mode"] for r in rows))
get = {(r["round"], r["mode"]): r for r in rows}
keys = ("rps", "p50_us", "p99_us", "rss_kb", "cpu_us_per_call")
med = lambda xs: statistics.median(xs) if xs else float("nan")

def col(m, k):
    return [float(get[(rd, m)][k]) for rd in rounds if (rd, m) in get]

def ratio(m, k):
    return med([float(get[(rd, m)][k]) / float(get[(rd, "bare")][k])
                for rd in rounds if (rd, m) in get and (rd, "bare") in get])

print("\n| mode | calls/s | p50 µs | p99 µs | CPU µs/call | server CPU | errors | calls/s / bare | p50 / bare | p99 / bare | peak RSS / bare |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in modes:
    errs = sum(int(get[(rd, m)]["errors"]) for rd in rounds if (rd, m) in get)
    print(f"| {m} | {med(col(m, 'rps')):,.0f} | {med(col(m, 'p50_us')):.0f} | {med(col(m, 'p99_us')):.0f}"
          f" | {med(col(m, 'cpu_us_per_call')):.2f} | {med(col(m, 'cpu_util')):.0%} | {errs}"
          f" | {ratio(m, 'rps'):.3f} | {ratio(m, 'p50_us'):.3f} | {ratio(m, 'p99_us'):.3f} | {ratio(m, 'rss_kb'):.3f} |")

busy = med(col("bare", "cpu_util")) if "bare" in modes else 1.0
if busy < 0.95 and not open_loop:
    print(f"\nNote: bare's server used {busy:.0%} of its core, so grpc-load, not the server,"
          " limited calls/s: compare CPU µs/call, not calls/s.")

# Added CPU per call relative to OpenTelemetry's (and fastrace's), per
# round, then the median.
ours = [m for m in modes if m in ("noop", "unsampled", "sampled")]
refs = [o for o in ("otel-sampled", "otel-unsampled", "fastrace") if o in modes]
if "bare" in modes and ours and refs:
    def added(rd, m, o):
        b, x, r = (get.get((rd, k)) for k in ("bare", m, o))
        if not (b and x and r):
            return None
        div = lambda a, b: a / b if b else float("nan")
        tp = float("nan") if open_loop else div(float(b["rps"]) / float(x["rps"]) - 1, float(b["rps"]) / float(r["rps"]) - 1)
        cb, cx, cr = (float(v["cpu_us_per_call"]) for v in (b, x, r))
        return tp, div(cx - cb, cr - cb)
    print("\nAdded CPU per call relative to OpenTelemetry's or fastrace's (median over the rounds):")
    print("| mode | vs | (bare/mode - 1) / (bare/other - 1), calls/s | (mode - bare) / (other - bare), CPU µs/call |")
    print("| --- | --- | ---: | ---: |")
    for o in refs:
        for m in ours:
            v = [a for a in (added(rd, m, o) for rd in rounds) if a]
            print(f"| {m} | {o} | {med([a[0] for a in v]):.3f} | {med([a[1] for a in v]):.3f} |")
PY
