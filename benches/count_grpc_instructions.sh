#!/usr/bin/env bash
# Instructions per call (all threads of the server, valgrind callgrind) of
# grpc-bench-server in each mode: deterministic enough to compare modes and
# builds on a noisy machine, where timings are not. Each mode runs twice
# under callgrind, paced by grpc-load at RATE calls/s (4 calls in flight),
# for SHORT and then LONG seconds; the difference of the two totals over the
# difference of the calls made leaves out start-up and exit. The sink (and,
# with UPSTREAM=1, a bare upstream the server forwards each call to through
# the mode's client) run natively. Stops every process it started.
#
#   benches/count_grpc_instructions.sh                  # bare noop unsampled sampled
#   UPSTREAM=1 benches/count_grpc_instructions.sh       # server and client spans
#   MODES="bare sampled" RATE=500 benches/count_grpc_instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-"bare noop unsampled sampled"}
RATE=${RATE:-1000}
SHORT=${SHORT:-2}
LONG=${LONG:-6}
UPSTREAM=${UPSTREAM:-}
OUT=${OUT:-target/grpc-instructions}
command -v valgrind >/dev/null || { echo "valgrind is needed"; exit 1; }
# common.sh installs wrk when it is missing; these runs do not use it, so a
# stand-in satisfies its check (and is gone once it is sourced).
command -v wrk >/dev/null || wrk() { return 1; }
# shellcheck source=benches/common.sh
. benches/common.sh # the release build, cleanup trap, sink, OTEL_*, helpers
unset -f wrk
export OTEL_SERVICE_NAME=grpc-bench-server

start_grpc_upstream

# Instructions and calls of one run under callgrind.   measure MODE SECONDS -> "IR CALLS"
measure() {
  local port srv calls
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$OUT/cg-$1-$2.out" \
    "$bin/grpc-bench-server" --mode "$1" --port "$port" --workers 1 \
    ${upstream_args[@]+"${upstream_args[@]}"} >"$OUT/server-$1-$2.log" 2>&1 &
  srv=$!
  pids+=("$srv")
  wait_up "$OUT/server-$1-$2.log" "grpc-bench-server --mode $1 (callgrind)" 30
  timeout $(($2 + 60)) "$bin/grpc-load" --target "http://127.0.0.1:$port" --concurrency 4 \
    --duration "$2" --rate "$RATE" >"$OUT/load-$1-$2.txt" 2>&1
  kill -INT "$srv"
  wait "$srv" || true
  forget "$srv"
  line=$(grep '^calls=' "$OUT/load-$1-$2.txt" || true)
  calls=$(field calls)
  echo "$(awk '/^summary:/ { print $2 }' "$OUT/cg-$1-$2.out") ${calls:-0}"
}

printf "%-10s %16s %12s\n" mode "instr/call" "over bare"
bare=""
for mode in $MODES; do
  read -r i1 c1 <<<"$(measure "$mode" "$SHORT")"
  read -r i2 c2 <<<"$(measure "$mode" "$LONG")"
  if [ "$c2" -le "$c1" ]; then
    echo "$mode: no more calls in the long run than in the short one ($c1, $c2)"
    exit 1
  fi
  per=$(( (i2 - i1) / (c2 - c1) ))
  [ "$mode" = bare ] && bare=$per
  printf "%-10s %16d %12s\n" "$mode" "$per" "${bare:+$((per - bare))}"
done
