#!/usr/bin/env bash
# Instructions per request (all threads, valgrind callgrind) through the
# server layer of each stack, in process: repeatable whatever else the
# machine is doing.   Usage: benches/count_layer_instructions.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
cargo build -q --release -p benchmarks --bin layer-profile
bin=target/release/layer-profile
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | awk '/Collected/ {print $4}'; }
printf "%-16s %14s %14s\n" "stack" "instr/request" "over bare"
base0=$(count bare 0)
bare=$(( ($(count bare "$n") - base0) / n ))
for mode in bare identity noop unsampled sampled otel-unsampled otel-sampled; do
  zero=$(count "$mode" 0)
  total=$(count "$mode" "$n")
  per=$(( (total - zero) / n ))
  printf "%-16s %14d %14d\n" "$mode" "$per" "$(( per - bare ))"
done
