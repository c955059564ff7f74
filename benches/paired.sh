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

results="$OUT/results.tsv"
printf "round\tmode\tbare_rps\tmode_rps\tratio\n" >"$results"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    # Alternate which server starts first, in case order matters.
    order=a-first
    [ $((round % 2)) = 1 ] || order=b-first
    side_by_side "$bin/http-bench-server" bare "$bin/http-bench-server" "$mode" "$order"
    ra=$RPS_A
    rb=$RPS_B
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
