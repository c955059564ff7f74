# Shared by benches/load.sh and benches/cpu_shares.sh (sourced, not run):
# tools, the release build, process cleanup, the sink both stacks export to.
# Expects OUT to be set; sets bin, pids, http_port, udp_port and the OTEL_*
# variables.

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed"; exit 1; }

cargo build -q --release -p benchmarks
bin=target/release
mkdir -p "$OUT"

pids=()
cleanup() {
  for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The sink shares wrk's core, never the server's: the server's core is the
# resource being measured, and both stacks export to the same sink.
taskset -c 1 "$bin/bench-sink" >"$OUT/sink.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q '^UDP' "$OUT/sink.out" 2>/dev/null && break; sleep 0.1; done
http_port=$(awk '/^HTTP/ {print $2}' "$OUT/sink.out")
udp_port=$(awk '/^UDP/ {print $2}' "$OUT/sink.out")
export OTEL_SERVICE_NAME=http-bench-server
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$http_port"
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf

# The trace headers every request carries: sampled, in both formats.
hdr1="uber-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
hdr2="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
