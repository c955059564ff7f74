#!/usr/bin/env bash
# The outgoing-call path side by side: `GET /chain` on http-bench-server,
# which calls a bare upstream's `/downstream` through the mode's client
# instrumentation (--client hyper: our `ClientTracingLayer` on hyper-util's
# client; --client reqwest: our `reqwest-middleware` middleware; the
# OpenTelemetry and fastrace modes inject `traceparent` by hand on the same
# clients), the request's server span included. For each client in CLIENTS
# and mode in MODES, a `bare` server and the mode's server (both with that
# client) run at the same time, as in benches/paired.sh: both pinned to
# CPU 0, each in its own scheduling group (setsid) so that each gets half of
# the core, each under its own wrk. CPU 0 holds nothing else: the upstream
# (`--mode bare --workers 1`, shared by both), both wrk and the sink are on
# CPU 1.
#
# Per pair: a 2 s warm-up, then CONNS connections for DURATION seconds;
# records both servers' requests/s and CPU time per request (user +
# system over the measured seconds, exporter threads included), how busy
# each core was, and wrk's non-2xx and socket errors. Reports per client
# and mode the median over the rounds of throughput / bare and of the
# added CPU per request (mode's CPU per request / bare's - 1, from the
# same pair), and our added CPU relative to OpenTelemetry's at the same
# sampling (noop and unsampled against otel-unsampled, sampled against
# otel-sampled and fastrace). Stops every process it started.
#
#   benches/client_paired.sh                              # defaults below
#   ROUNDS=3 DURATION=6 benches/client_paired.sh
#   CLIENTS=reqwest MODES="bare sampled otel-sampled" benches/client_paired.sh
#
# benches/common.sh's side_by_side is not reused: it does not pass
# --client / --upstream and reads no CPU time (the throughput ratio alone
# understates a mode's cost when CPU 0 is not saturated: see the cpu0
# column); this script has its own round on the same plan, with
# common.sh's sink, cleanup, headers and helpers, and the summary of
# benches/paired_summary.py.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
CLIENTS=${CLIENTS:-"hyper reqwest"}
MODES=${MODES:-"bare identity noop unsampled sampled otel-unsampled otel-sampled fastrace"}
OUT=${OUT:-target/client-paired}
URL_PATH=/chain
command -v setsid >/dev/null || { echo "setsid (util-linux) is needed"; exit 1; }
# shellcheck source=benches/common.sh
. benches/common.sh # wrk, the release build, cleanup trap, sink on CPU 1, OTEL_*, headers
echo "sink: OTLP/HTTP 127.0.0.1:$http_port, UDP 127.0.0.1:$udp_port"
hz=$(getconf CLK_TCK)
limit=$((DURATION + 30))

# wrk's errors: non-2xx/3xx responses plus socket errors.
wrk_errors() {
  awk '/Non-2xx/ { n += $NF } /Socket errors/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i } END { print n + 0 }' "$1"
}

# The shared upstream: bare, one worker, on CPU 1 with the load generators.
up_port=$(free_port)
taskset -c 1 "$bin/http-bench-server" --mode bare --port "$up_port" --workers 1 >"$OUT/upstream.log" 2>&1 &
pids+=($!)
wait_up "$OUT/upstream.log" upstream
upstream="http://127.0.0.1:$up_port"

# A measured server on CPU 0 in its own session: chain_server MODE CLIENT PORT LOG -> pid
chain_server() {
  setsid taskset -c 0 "$bin/http-bench-server" --mode "$1" --client "$2" --upstream "$upstream" \
    --port "$3" --workers 1 >"$4" 2>&1 &
  echo $!
}

# One pair: bare and MODE, both with CLIENT. Sets RPS_A RPS_B CPU_A CPU_B
# (µs per request) B0 B1 (core busy) ERR (wrk errors, both).
#   pair CLIENT MODE [b-first]
pair() {
  local pa pb sa sb w ua ub ca0 cb0 ca1 cb1 s0 s1
  pa=$(free_port)
  pb=$(free_port)
  if [ "${3:-}" = b-first ]; then
    sb=$(chain_server "$2" "$1" "$pb" "$OUT/server-b.log")
    sa=$(chain_server bare "$1" "$pa" "$OUT/server-a.log")
  else
    sa=$(chain_server bare "$1" "$pa" "$OUT/server-a.log")
    sb=$(chain_server "$2" "$1" "$pb" "$OUT/server-b.log")
  fi
  pids+=("$sa" "$sb")
  wait_up "$OUT/server-a.log" "bare ($1)"
  wait_up "$OUT/server-b.log" "$2 ($1)"
  ua="http://127.0.0.1:$pa$URL_PATH"
  ub="http://127.0.0.1:$pb$URL_PATH"
  taskset -c 1 timeout "$limit" wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$ua" >/dev/null &
  w=$!
  taskset -c 1 timeout "$limit" wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$ub" >/dev/null
  wait "$w"
  s0=$(cores)
  ca0=$(cpu_ticks "$sa")
  cb0=$(cpu_ticks "$sb")
  taskset -c 1 timeout "$limit" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$hdr1" -H "$hdr2" "$ua" >"$OUT/wrk-a.txt" &
  w=$!
  taskset -c 1 timeout "$limit" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$hdr1" -H "$hdr2" "$ub" >"$OUT/wrk-b.txt"
  wait "$w"
  ca1=$(cpu_ticks "$sa")
  cb1=$(cpu_ticks "$sb")
  s1=$(cores)
  stop "$sa" "$sb"
  RPS_A=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-a.txt")
  RPS_B=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-b.txt")
  CPU_A=$(awk -v c="$((ca1 - ca0))" -v hz="$hz" -v r="$RPS_A" -v d="$DURATION" 'BEGIN { printf "%.2f", c / hz * 1e6 / (r * d) }')
  CPU_B=$(awk -v c="$((cb1 - cb0))" -v hz="$hz" -v r="$RPS_B" -v d="$DURATION" 'BEGIN { printf "%.2f", c / hz * 1e6 / (r * d) }')
  B0=$(busy "$s0" "$s1" 0)
  B1=$(busy "$s0" "$s1" 1)
  ERR=$(($(wrk_errors "$OUT/wrk-a.txt") + $(wrk_errors "$OUT/wrk-b.txt")))
}

n=$(($(wc -w <<<"$CLIENTS") * $(wc -w <<<"$MODES")))
echo "$ROUNDS round(s) x $n pair(s), about $((ROUNDS * n * (DURATION + 3))) s"
results="$OUT/results.tsv"
printf "round\tclient\tmode\tbare_rps\tmode_rps\tratio\tbare_cpu_us\tmode_cpu_us\tcpu0_busy\tcpu1_busy\terrors\n" >"$results"
for round in $(seq "$ROUNDS"); do
  for client in $CLIENTS; do
    for mode in $MODES; do
      order=a-first
      [ $((round % 2)) = 1 ] || order=b-first
      pair "$client" "$mode" "$order"
      ratio=$(python3 -c "print('%.4f' % ($RPS_B / $RPS_A))")
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$round" "$client" "$mode" "$RPS_A" "$RPS_B" \
        "$ratio" "$CPU_A" "$CPU_B" "$B0" "$B1" "$ERR" | tee -a "$results"
    done
  done
done

python3 benches/paired_summary.py "$results"
