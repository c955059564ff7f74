#!/usr/bin/env bash
# Two builds of http-bench-server side by side, in one mode: both pinned to
# CPU 0 (each in its own scheduling group, so each gets half the core, its
# exporter thread included), each under its own wrk on CPU 1, as in
# benches/paired.sh. Prints, per round and as the median, the throughput of
# NEW over OLD in the same seconds: above 1 means NEW is faster. Comparing a
# build with itself is the control (it reads 1, within about 1%).
#
#   cp target/release/http-bench-server target/http-bench-server.old   # before a change
#   ...change, cargo build --release -p benchmarks...
#   benches/ab_builds.sh target/http-bench-server.old target/release/http-bench-server sampled
#   ROUNDS=7 DURATION=6 benches/ab_builds.sh OLD NEW unsampled
#
# Both export to the same local sink. Stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benches/ab_builds.sh OLD_BIN NEW_BIN [MODE]"; exit 2; }
old=$(realpath "$1")
new=$(realpath "$2")
mode=${3:-sampled}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONNS=${CONNS:-16}
URL_PATH=${URL_PATH:-/users/42}
OUT=${OUT:-target/ab_builds}
command -v setsid >/dev/null || { echo "setsid (util-linux) is needed"; exit 1; }
# shellcheck source=benches/common.sh
. benches/common.sh

ratios=()
for round in $(seq "$ROUNDS"); do
  side_by_side "$old" "$mode" "$new" "$mode"
  ra=$RPS_A
  rb=$RPS_B
  r=$(python3 -c "print('%.4f' % ($rb / $ra))")
  ratios+=("$r")
  printf "round %s: old %s req/s, new %s req/s, new/old %s\n" "$round" "$ra" "$rb" "$r"
done
python3 -c "
import statistics, sys
v = [float(x) for x in sys.argv[1:]]
print('$mode: new/old median %.3f, range %.3f-%.3f over %d rounds' % (statistics.median(v), min(v), max(v), len(v)))
" "${ratios[@]}"
