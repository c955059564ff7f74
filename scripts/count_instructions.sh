#!/usr/bin/env bash
# Instruction counts per operation (valgrind callgrind): repeatable whatever
# else the machine is doing, unlike wall-clock times on a shared machine.
# Usage: scripts/count_instructions.sh [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
cargo build -q --profile bench -p opentracing-api --example profile_round_trip
bin=target/release/examples/profile_round_trip
base=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" none 0 2>&1 | awk '/Collected/ {print $4}')
printf "%-12s %12s\n" "operation" "instr/op"
for what in uber otel-uber w3c otel-w3c noop; do
  total=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$what" "$n" 2>&1 | awk '/Collected/ {print $4}')
  printf "%-12s %12d\n" "$what" $(( (total - base) / n ))
done
