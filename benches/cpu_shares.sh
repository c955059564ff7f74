#!/usr/bin/env bash
# Where the server's CPU goes under load: for each mode, runs
# http-bench-server (CPU 0, one worker) under wrk (CPU 1, the same request
# as benches/load.sh), samples it with `perf record -e cpu-clock` and splits
# the samples into kernel, libc, tracing code (our crates, or tracing /
# OpenTelemetry), the exporter thread (our reporter or OpenTelemetry's batch
# processor) and other user code. Within-run shares, so less noisy than
# throughput ratios. Stops every process it started.
#
#   benches/cpu_shares.sh                       # every mode, 8 s each
#   MODES="bare unsampled" SECONDS_PER_MODE=5 benches/cpu_shares.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"bare noop unsampled sampled otel-unsampled otel-sampled"}
SECS=${SECONDS_PER_MODE:-8}
URL_PATH=${URL_PATH:-/users/42}
OUT=${OUT:-target/cpu-shares}
command -v perf >/dev/null || { echo "perf (linux-perf) is needed"; exit 1; }
# shellcheck source=benches/common.sh
. benches/common.sh

printf "%-15s %9s %8s %7s %9s %9s %8s\n" mode req/s kernel libc tracing exporter other
for mode in $MODES; do
  port=$(free_port)
  taskset -c 0 "$bin/http-bench-server" --mode "$mode" --port "$port" --workers 1 >"$OUT/server-$mode.log" 2>&1 &
  srv=$!
  pids+=("$srv")
  for _ in $(seq 50); do grep -q listening "$OUT/server-$mode.log" 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c32 -d$((SECS + 2))s -H "$hdr1" -H "$hdr2" "http://127.0.0.1:$port$URL_PATH" >"$OUT/wrk-$mode.txt" 2>&1 &
  w=$!
  sleep 1
  perf record -q -e cpu-clock -p "$srv" -o "$OUT/perf-$mode.data" -- sleep "$SECS" 2>/dev/null
  wait "$w"
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$OUT/wrk-$mode.txt")
  perf report -i "$OUT/perf-$mode.data" --no-children --sort comm,dso,sym --stdio -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | awk -v mode="$mode" -v rps="$rps" '
      { p = $1; sub("%", "", p); p += 0; comm = $2
        if (comm == "jaeger-reporter" || comm ~ /^OpenTelemetry/) { e += p; next }
        if ($0 ~ /\[kernel/) { k += p; next }
        if ($0 ~ /libc/) { l += p; next }
        if ($0 ~ /opentracing|jaeger|TracedBody|TracingService|ResponseFuture|opentelemetry|tracing_subscriber|tracing_core|tower_http::trace/) { t += p; next }
        u += p }
      END { printf "%-15s %9s %7.1f%% %6.1f%% %8.1f%% %8.1f%% %7.1f%%\n", mode, rps, k, l, t, e, u }'
done
