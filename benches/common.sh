# Shared by the load scripts in benches/ (sourced, not run): tools, the
# release build, process cleanup, the sink every stack exports to, and small
# helpers (free_port, side_by_side, wait_up, start_grpc_upstream, stop,
# cpu_ticks, cores, busy, forget, field).
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
# fastrace's Jaeger reporter (our tracer exports over OTLP, which the
# variables above choose first).
export JAEGER_AGENT_HOST=127.0.0.1
export JAEGER_AGENT_PORT="$udp_port"

# The trace headers every request carries: sampled, in both formats.
hdr1="uber-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1"
hdr2="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One side-by-side round (benches/paired.sh, benches/ab_builds.sh): two
# servers pinned to CPU 0, each in its own scheduling group (so each gets
# half the core, its exporter thread included), each under its own wrk on
# CPU 1: a 2 s warm-up, then CONNS connections for DURATION seconds, both
# at the same time. Stops both servers. Sets RPS_A and RPS_B (requests/s).
#   side_by_side BIN_A MODE_A BIN_B MODE_B [b-first]
side_by_side() {
  local pa pb sa sb w ua ub
  pa=$(free_port)
  pb=$(free_port)
  if [ "${5:-}" = b-first ]; then
    sb=$(start_pinned "$3" "$4" "$pb" "$OUT/server-b.log")
    sa=$(start_pinned "$1" "$2" "$pa" "$OUT/server-a.log")
  else
    sa=$(start_pinned "$1" "$2" "$pa" "$OUT/server-a.log")
    sb=$(start_pinned "$3" "$4" "$pb" "$OUT/server-b.log")
  fi
  pids+=("$sa" "$sb")
  wait_listening "$OUT/server-a.log"
  wait_listening "$OUT/server-b.log"
  ua="http://127.0.0.1:$pa$URL_PATH"
  ub="http://127.0.0.1:$pb$URL_PATH"
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$ua" >/dev/null &
  w=$!
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "$hdr1" -H "$hdr2" "$ub" >/dev/null
  wait "$w"
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$hdr1" -H "$hdr2" "$ua" >"$OUT/wrk-a.txt" &
  w=$!
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "$hdr1" -H "$hdr2" "$ub" >"$OUT/wrk-b.txt"
  wait "$w"
  stop "$sa" "$sb"
  RPS_A=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-a.txt")
  RPS_B=$(awk '/Requests\/sec/ {print $2}' "$OUT/wrk-b.txt")
}

# Stops processes and waits until they are gone (at most 10 s): servers
# started by `start_pinned` run in a command substitution, so they are not
# this shell's children and `wait` cannot wait for them.   stop PID...
stop() {
  kill "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
  local p
  for p in "$@"; do
    for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  done
}

# A server in its own session (scheduling group) on CPU 0.
#   start_pinned BIN MODE PORT LOG -> pid
start_pinned() {
  setsid taskset -c 0 "$1" --mode "$2" --port "$3" --workers 1 >"$4" 2>&1 &
  echo $!
}

# Waits until a server's log says it is listening (at most SECONDS, default
# 5); otherwise prints the log and exits.   wait_up LOG NAME [SECONDS]
wait_up() {
  for _ in $(seq $((${3:-5} * 20))); do grep -q listening "$1" 2>/dev/null && return; sleep 0.05; done
  echo "$2 did not start:"
  cat "$1"
  exit 1
}

# With UPSTREAM set, a bare grpc-bench-server on CPU 1 (with the load
# generators) as the upstream the measured servers forward calls to; sets
# upstream_args to the servers' `--upstream` argument (empty without it).
start_grpc_upstream() {
  upstream_args=()
  [ -n "${UPSTREAM:-}" ] || return 0
  local port
  port=$(free_port)
  taskset -c 1 "$bin/grpc-bench-server" --mode bare --port "$port" --workers 1 >"$OUT/upstream.log" 2>&1 &
  pids+=($!)
  wait_up "$OUT/upstream.log" "the upstream"
  upstream_args=(--upstream "http://127.0.0.1:$port")
}

wait_listening() {
  for _ in $(seq 50); do grep -q listening "$1" 2>/dev/null && return; sleep 0.1; done
}

# user + system time of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# The counters of CPU 0 and CPU 1 from /proc/stat, for `busy`.
cores() { grep -E '^cpu[01] ' /proc/stat | tr '\n' ' '; }

# How busy a core was between two `cores` readings (0 to 1).
busy() { # busy BEFORE AFTER CORE(0|1)
  awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    o = c == 0 ? 1 : 12
    tot = 0; for (i = 1; i <= 8; i++) tot += y[o + i] - x[o + i]
    idle = (y[o + 4] - x[o + 4]) + (y[o + 5] - x[o + 5])
    printf "%.3f", tot ? 1 - idle / tot : 0 }'
}

# Drops a reaped process from the cleanup list (its id may be reused).
forget() {
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# A field of a load generator's summary line (grpc-load's or http-load's,
# in $line): calls|errors|rps|p50_us|p99_us.
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$line"; }
