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
# common.sh's sink, cleanup, headers and helpers. common.sh is unchanged.
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

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cores() { grep -E '^cpu[01] ' /proc/stat | tr '\n' ' '; }
busy() { # busy BEFORE AFTER CORE(0|1)
  awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    o = c == 0 ? 1 : 12
    tot = 0; for (i = 1; i <= 8; i++) tot += y[o + i] - x[o + i]
    idle = (y[o + 4] - x[o + 4]) + (y[o + 5] - x[o + 5])
    printf "%.3f", tot ? 1 - idle / tot : 0 }'
}
# wrk's errors: non-2xx/3xx responses plus socket errors.
wrk_errors() {
  awk '/Non-2xx/ { n += $NF } /Socket errors/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i } END { print n + 0 }' "$1"
}
wait_up() { # wait_up LOG PID NAME
  wait_listening "$1"
  if ! grep -q listening "$1" 2>/dev/null; then
    echo "$3 did not start:"
    cat "$1"
    exit 1
  fi
}

# The shared upstream: bare, one worker, on CPU 1 with the load generators.
up_port=$(free_port)
taskset -c 1 "$bin/http-bench-server" --mode bare --port "$up_port" --workers 1 >"$OUT/upstream.log" 2>&1 &
pids+=($!)
wait_up "$OUT/upstream.log" $! upstream
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
  wait_up "$OUT/server-a.log" "$sa" "bare ($1)"
  wait_up "$OUT/server-b.log" "$sb" "$2 ($1)"
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
  kill "$sa" "$sb" 2>/dev/null || true
  wait "$sa" "$sb" 2>/dev/null || true
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

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda xs: statistics.median(xs) if xs else float("nan")
clients = list(dict.fromkeys(r["client"] for r in rows))
modes = list(dict.fromkeys(r["mode"] for r in rows))
rounds = sorted({r["round"] for r in rows}, key=int)
get = {(r["round"], r["client"], r["mode"]): r for r in rows}

def added_cpu(r):  # the mode's CPU per request over bare's, same pair
    return float(r["mode_cpu_us"]) / float(r["bare_cpu_us"]) - 1

def added_tp(r):  # the same, from the throughput ratio
    return 1 / float(r["ratio"]) - 1

for c in clients:
    print(f"\n### client: {c}\n")
    print("| mode | throughput / bare (median) | range | CPU µs/req, mode (bare) | added CPU/req, from CPU time | from throughput | CPU 0 busy | CPU 1 busy | errors |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for m in modes:
        rs = [get[(rd, c, m)] for rd in rounds if (rd, c, m) in get]
        if not rs:
            continue
        v = sorted(float(r["ratio"]) for r in rs)
        print(f"| {m} | {med(v):.3f} | {v[0]:.3f}–{v[-1]:.3f}"
              f" | {med([float(r['mode_cpu_us']) for r in rs]):.1f} ({med([float(r['bare_cpu_us']) for r in rs]):.1f})"
              f" | {med([added_cpu(r) for r in rs]):+.1%} | {med([added_tp(r) for r in rs]):+.1%}"
              f" | {med([float(r['cpu0_busy']) for r in rs]):.0%} | {med([float(r['cpu1_busy']) for r in rs]):.0%}"
              f" | {sum(int(r['errors']) for r in rs)} |")
    pairs = [("noop", "otel-unsampled"), ("unsampled", "otel-unsampled"),
             ("sampled", "otel-sampled"), ("sampled", "fastrace")]
    pairs = [(m, o) for m, o in pairs if m in modes and o in modes]
    if pairs:
        print("\nOur added CPU per request over the other stack's (median over the rounds of the per-round ratio):\n")
        print("| mode | vs | from CPU time | from throughput |")
        print("| --- | --- | ---: | ---: |")
        for m, o in pairs:
            a, b = [], []
            for rd in rounds:
                x, r = get.get((rd, c, m)), get.get((rd, c, o))
                if x and r:
                    if added_cpu(r):
                        a.append(added_cpu(x) / added_cpu(r))
                    if added_tp(r):
                        b.append(added_tp(x) / added_tp(r))
            print(f"| {m} | {o} | {med(a):.2f} | {med(b):.2f} |")
    # The no-op tracer against an empty layer: a ratio of two near-zero
    # costs means nothing, so compare throughput / bare with the spread of
    # the bare-against-bare control.
    if all(m in modes for m in ("noop", "identity", "bare")):
        tp = {m: sorted(float(get[(rd, c, m)]["ratio"]) for rd in rounds if (rd, c, m) in get)
              for m in ("noop", "identity", "bare")}
        d = med(tp["identity"]) - med(tp["noop"])
        noise = max(abs(x - 1) for x in tp["bare"])
        print(f"\nno-op tracer against an identity layer: throughput / bare {med(tp['noop']):.3f}"
              f" against {med(tp['identity']):.3f}, {d:+.1%} of bare's; the bare control"
              f" strays up to {noise:.1%} from 1: {'within' if d <= noise else 'outside'} the noise")
busy0 = med([float(r["cpu0_busy"]) for r in rows])
if busy0 < 0.95:
    print(f"\nNote: CPU 0 was {busy0:.0%} busy: the servers were partly waiting on CPU 1 (wrk, the"
          " upstream, the sink), which compresses the throughput ratios; the CPU-time column holds.")
if any(int(r["errors"]) for r in rows):
    print("\nNote: some requests failed (errors column): their throughput is not comparable.")
PY
