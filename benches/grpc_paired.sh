#!/usr/bin/env bash
# gRPC side by side: a `bare` grpc-bench-server and the mode's run at the
# same time, both pinned to CPU 0, each in its own scheduling group (setsid)
# so that each gets half of the core, each under its own grpc-load
# (CONCURRENCY unary calls in flight over one channel, sampled
# `traceparent` and `uber-trace-id` on every call) on CPU 1 with the sink.
# Whatever else the machine does in those seconds slows both alike, so the
# pair's ratios are much steadier than benches/grpc_load.sh's runs one after
# the other. With UPSTREAM=1 both servers forward every call to one bare
# upstream on CPU 1 through the mode's client instrumentation
# (`--upstream`): the figures are then the server and client spans
# together.
#
# Per pair: a 2 s warm-up, then DURATION seconds; records both servers'
# calls/s and CPU time per call (user + system over the measured seconds,
# exporter threads included), how busy each core was, and failed calls.
# Reports (benches/paired_summary.py) per mode the median over the rounds
# of throughput / bare and of the added CPU per call, and our added CPU
# relative to OpenTelemetry's at the same sampling and to fastrace's. Stops
# every process it started; each grpc-load run is bounded by `timeout`.
#
#   benches/grpc_paired.sh                                # defaults below
#   UPSTREAM=1 benches/grpc_paired.sh                     # the client path too
#   ROUNDS=3 MODES="bare sampled otel-sampled" benches/grpc_paired.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONCURRENCY=${CONCURRENCY:-32}
MODES=${MODES:-"bare noop unsampled sampled otel-unsampled otel-sampled fastrace"}
UPSTREAM=${UPSTREAM:-}
OUT=${OUT:-target/grpc-paired}
command -v setsid >/dev/null || { echo "setsid (util-linux) is needed"; exit 1; }
# common.sh installs wrk when it is missing; gRPC runs do not use it, so a
# stand-in satisfies its check (and is gone once it is sourced).
command -v wrk >/dev/null || wrk() { return 1; }
# shellcheck source=benches/common.sh
. benches/common.sh # the release build, cleanup trap, sink on CPU 1, OTEL_*, helpers
unset -f wrk
export OTEL_SERVICE_NAME=grpc-bench-server
echo "sink: OTLP/HTTP 127.0.0.1:$http_port, UDP 127.0.0.1:$udp_port"
hz=$(getconf CLK_TCK)
limit=$((DURATION + 30))

start_grpc_upstream
path="grpc server"
[ -z "$UPSTREAM" ] || path="grpc server + client"

# A measured server on CPU 0 in its own session.   measured MODE PORT LOG -> pid
measured() {
  setsid taskset -c 0 "$bin/grpc-bench-server" --mode "$1" --port "$2" --workers 1 \
    ${upstream_args[@]+"${upstream_args[@]}"} >"$3" 2>&1 &
  echo $!
}

# grpc-load on CPU 1 against both servers at once, for SECONDS; outputs in
# $OUT/load-a.txt and $OUT/load-b.txt.   both SECONDS URL_A URL_B
both() {
  local la lb ok=1
  timeout "$limit" taskset -c 1 "$bin/grpc-load" --target "$2" --concurrency "$CONCURRENCY" \
    --duration "$1" >"$OUT/load-a.txt" 2>&1 &
  la=$!
  timeout "$limit" taskset -c 1 "$bin/grpc-load" --target "$3" --concurrency "$CONCURRENCY" \
    --duration "$1" >"$OUT/load-b.txt" 2>&1 &
  lb=$!
  pids+=("$la" "$lb")
  wait "$la" || ok=0
  wait "$lb" || ok=0
  forget "$la"
  forget "$lb"
  if [ "$ok" = 0 ]; then
    echo "grpc-load failed ($mode, round $round):"
    cat "$OUT/load-a.txt" "$OUT/load-b.txt"
    exit 1
  fi
}

# One pair: bare and MODE. Sets RPS_A RPS_B CPU_A CPU_B (µs per call) B0 B1
# (core busy) ERR (failed calls, both).   pair MODE [b-first]
pair() {
  local pa pb sa sb ca0 cb0 ca1 cb1 s0 s1 calls_a calls_b
  pa=$(free_port)
  pb=$(free_port)
  if [ "${2:-}" = b-first ]; then
    sb=$(measured "$1" "$pb" "$OUT/server-b.log")
    sa=$(measured bare "$pa" "$OUT/server-a.log")
  else
    sa=$(measured bare "$pa" "$OUT/server-a.log")
    sb=$(measured "$1" "$pb" "$OUT/server-b.log")
  fi
  pids+=("$sa" "$sb")
  wait_up "$OUT/server-a.log" bare
  wait_up "$OUT/server-b.log" "$1"
  both 2 "http://127.0.0.1:$pa" "http://127.0.0.1:$pb"
  s0=$(cores)
  ca0=$(cpu_ticks "$sa")
  cb0=$(cpu_ticks "$sb")
  both "$DURATION" "http://127.0.0.1:$pa" "http://127.0.0.1:$pb"
  ca1=$(cpu_ticks "$sa")
  cb1=$(cpu_ticks "$sb")
  s1=$(cores)
  stop "$sa" "$sb"
  forget "$sa"
  forget "$sb"
  line=$(grep '^calls=' "$OUT/load-a.txt" || true)
  RPS_A=$(field rps)
  calls_a=$(field calls)
  ERR=$(field errors)
  line=$(grep '^calls=' "$OUT/load-b.txt" || true)
  RPS_B=$(field rps)
  calls_b=$(field calls)
  if [ "${calls_a:-0}" -le 0 ] || [ "${calls_b:-0}" -le 0 ]; then
    echo "no call answered ($1, round $round):"
    cat "$OUT/load-a.txt" "$OUT/load-b.txt"
    exit 1
  fi
  ERR=$((ERR + $(field errors)))
  CPU_A=$(awk -v c="$((ca1 - ca0))" -v hz="$hz" -v n="$calls_a" 'BEGIN { printf "%.2f", c / hz * 1e6 / n }')
  CPU_B=$(awk -v c="$((cb1 - cb0))" -v hz="$hz" -v n="$calls_b" 'BEGIN { printf "%.2f", c / hz * 1e6 / n }')
  B0=$(busy "$s0" "$s1" 0)
  B1=$(busy "$s0" "$s1" 1)
}

n=$(wc -w <<<"$MODES")
echo "$ROUNDS round(s) x $n pair(s) ($path), about $((ROUNDS * n * (DURATION + 3))) s"
results="$OUT/results.tsv"
printf "round\tclient\tmode\tbare_rps\tmode_rps\tratio\tbare_cpu_us\tmode_cpu_us\tcpu0_busy\tcpu1_busy\terrors\n" >"$results"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    order=a-first
    [ $((round % 2)) = 1 ] || order=b-first
    pair "$mode" "$order"
    ratio=$(python3 -c "print('%.4f' % ($RPS_B / $RPS_A))")
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$path" "$mode" "$RPS_A" "$RPS_B" \
      "$ratio" "$CPU_A" "$CPU_B" "$B0" "$B1" "$ERR" | tee -a "$results"
  done
done

python3 benches/paired_summary.py "$results"
