#!/usr/bin/env bash
# Runs every fuzz target (the extractors, the gRPC metadata extractor, the
# Thrift and OTLP span encoders) for a while (default 60 s each).
# Usage: scripts/fuzz.sh [seconds-per-target]
# Installs cargo-fuzz if it is missing. cargo-fuzz needs nightly flags; on a
# stable-only machine RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in jaeger_extract jaeger_binary w3c_extract b3_extract thrift_encode otlp_encode grpc_metadata_extract; do
  echo "== $t for ${secs}s"
  cargo fuzz run "$t" -- -max_total_time="$secs" -max_len=4096 2>&1 | grep -E "^(Done|#[0-9]+ +DONE)|ERROR|panicked|SUMMARY" || true
  # A crash leaves an artifact and a non-zero status; fail loudly.
  if ls artifacts/"$t"/crash-* >/dev/null 2>&1; then echo "crash found in $t"; exit 1; fi
done
