#!/usr/bin/env bash
# Side-by-side load runs: `bare` and one other mode run at the same time,
# both pinned to CPU 0 (each in its own scheduling group, so each process
# gets half the core, its exporter thread included), each driven by its own
# wrk on CPU 1. Whatever else the shared machine does in those seconds
# slows both alike, so their throughput ratio (= bare's CPU per request /
# the mode's) is much steadier than the ratio of runs made one after the
# other (benches/load.sh). A `bare` row is the control: it should read 1.
# Reports, per mode, the median over the rounds of that ratio. Stops every
# process it started.
#
#   benches/paired.sh                                   # defaults below
#   MODES="noop unsampled" ROUNDS=9 benches/paired.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
URL_PATH=${URL_PATH:-/users/42}
MODES=${MODES:-"bare noop unsampled sampled otel-unsampled otel-sampled"}
OUT=${OUT:-target/paired}
command -v setsid >/dev/null || { echo "setsid (util-linux) is needed"; exit 1; }
# shellcheck source=benches/common.sh
. benches/common.sh

start_server() { # mode port log -> pid
  setsid taskset -c 0 "$bin/http-bench-server" --mode "$1" --port "$2" --workers 1 >"$3" 2>&1 &
  echo $!
}
wait_listening() {
  for _ in $(seq 50); do grep -q listening "$1" 2>/dev/null && return; sleep 0.1; done
}

results="$OUT/results.tsv"
printf "round\tmode\tbare_rps\tmode_rps\tratio\n" >"$results"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    pa=$(free_port)
    pb=$(free_port)
    # Alternate which server starts first, in case order matters.
    if [ $((round % 2)) = 1 ]; then
      sa=$(start_server bare "$pa" "$OUT/server-a.log"); sb=$(start_server "$mode" "$pb" "$OUT/server-b.log")
    else
      sb=$(start_server "$mode" "$pb" "$OUT/server-b.log"); sa=$(start_server bare "$pa" "$OUT/server-a.log")
    fi
    pids+=("$sa" "$sb")
    wait_listening "$OUT/server-a.log"
    wait_listening "$OUT/server-b.log"
    ua="http://127.0.0.1:$pa$URL_PATH"
    ub="http://127.0.0.1:$pb$URL_PATH"
    # Warm-up, then the measured run, both servers under load together.
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$ua" >/dev/null &
    w=$!
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$ub" >/dev/null
    wait "$w"
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$hdr1" -H "$hdr2" "$ua" >"$OUT/wrk-a.txt" &
    w=$!
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$hdr1" -H "$hdr2" "$ub" >"$OUT/wrk-b.txt"
    wait "$w"
    kill "$sa" "$sb" 2>/dev/null || true
    wait "$sa" "$sb" 2>/dev/null || true
    ra=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-a.txt")
    rb=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-b.txt")
    ratio=$(python3 -c "print('%.4f' % ($rb / $ra))")
    printf "%s\t%s\t%s\t%s\t%s\n" "$round" "$mode" "$ra" "$rb" "$ratio" | tee -a "$results"
  done
done

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
modes = []
for r in rows:
    if r["mode"] not in modes:
        modes.append(r["mode"])
print()
print("| mode | throughput / bare, side by side (median) | range over the rounds |")
print("| --- | ---: | --- |")
for m in modes:
    v = sorted(float(r["ratio"]) for r in rows if r["mode"] == m)
    print(f"| {m} | {statistics.median(v):.3f} | {v[0]:.3f}–{v[-1]:.3f} |")
PY
