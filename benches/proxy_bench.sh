#!/usr/bin/env bash
# Port-forwarder benchmark: 16 KiB echo messages through `torsion serve ... forward` and
# through HAProxy in TCP mode (one process, `nbthread 1`), in the same run, to the same
# echo backend. Each forwarder is pinned to core 0; the backend and the load generator
# share core 1. Reports throughput and forwarder CPU per MiB; writes results/proxy_bench.md.
#
# Usage: benches/proxy_bench.sh [SECONDS] [CONNECTIONS] [ROUNDS]   (defaults 10, 50 and 3;
#        the two forwarders alternate, round after round, and the table gives medians)
#        QUICK=1 benches/proxy_bench.sh                    (1 s, 4 connections, debug build:
#                                                           checks the script, measures nothing)
# Needs haproxy (Debian: apt-get install haproxy; installed if missing and we are root).
# Every process it starts is ended by PID on exit.
set -euo pipefail
secs=${1:-10}
conns=${2:-50}
rounds=${3:-3}
size=16384
profile=release
if [ "${QUICK:-0}" = 1 ]; then secs=1; conns=4; rounds=1; profile=debug; fi
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

if ! command -v haproxy >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
  else
    echo "needs haproxy (apt-get install haproxy)" >&2; exit 2
  fi
fi
if [ "$profile" = release ]; then
  cargo build --release --features cli --bin torsion -q
else
  cargo build --features cli --bin torsion -q
fi
bin="$CARGO_TARGET_DIR/$profile/torsion"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; exit 1
}

# The echo backend, on core 1 with the load generator.
bport=$(free_port)
RUST_LOG=warn taskset -c 1 "$bin" serve -q --listen "tcp:$bport:interface=127.0.0.1" echo >/dev/null &
pids+=($!)
wait_port "$bport"

# torsion's forwarder, core 0.
fport=$(free_port)
RUST_LOG=warn taskset -c 0 "$bin" serve -q --listen "tcp:$fport:interface=127.0.0.1" \
  forward --to "tcp:host=127.0.0.1:port=$bport" >/dev/null &
fpid=$!; pids+=($fpid)
wait_port "$fport"

# HAProxy in TCP mode, one process, one thread, core 0.
hport=$(free_port)
cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend front
  bind 127.0.0.1:$hport
  default_backend echo
backend echo
  server echo1 127.0.0.1:$bport
CFG
taskset -c 0 haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 &
hpid=$!; pids+=($hpid)
wait_port "$hport"

# CPU ticks (user + system, 1/100 s) of one process.
ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
load() {
  taskset -c 1 "$bin" load --addr "127.0.0.1:$1" --size "$size" --connections "$conns" \
    --in-flight 1 --duration "$secs" --warmup 1
}
# Messages per second from the load generator's report (first number on its msgs/s line).
rate() { grep -Eio '[0-9.]+ *(msg|messages)/s' "$1" | head -1 | grep -Eo '[0-9.]+' || echo 0; }
# Forwarder CPU per MiB forwarded (ms): /proc ticks over warm-up and measured run, bytes
# at the measured rate over both.
cpu_ms() { python3 -c "r=$3*$size*2/1048576*($secs+1); print(f'{($2-$1)*10/r:.3f}' if r else 0)"; }
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
trates=(); hrates=(); tcpus=(); hcpus=()
for r in $(seq "$rounds"); do
  echo "== round $r/$rounds: torsion forward on core 0 (backend and load on core 1)"
  t0=$(ticks "$fpid"); load "$fport" | tee "$work/torsion.txt"; t1=$(ticks "$fpid")
  echo "== round $r/$rounds: haproxy (tcp mode, nbthread 1) on core 0"
  h0=$(ticks "$hpid"); load "$hport" | tee "$work/haproxy.txt"; h1=$(ticks "$hpid")
  tr=$(rate "$work/torsion.txt"); hr=$(rate "$work/haproxy.txt")
  trates+=("$tr"); hrates+=("$hr")
  tcpus+=("$(cpu_ms "$t0" "$t1" "$tr")"); hcpus+=("$(cpu_ms "$h0" "$h1" "$hr")")
done
t=$(median "${trates[@]}"); h=$(median "${hrates[@]}")
tc=$(median "${tcpus[@]}"); hc=$(median "${hcpus[@]}")
mib() { python3 -c "print(f'{$1*$size*2/1048576:.1f}')"; }   # both directions
ratio=$(python3 -c "print(f'{$t/$h:.2f}' if $h else '?')")
out=results/proxy_bench.md
if [ "${QUICK:-0}" = 1 ]; then out="$work/proxy_bench.md"; else mkdir -p results; fi
cat >"$out" <<MD
# Port forwarder: torsion vs HAProxy (TCP mode), ${size}-byte echo messages

- when: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); kernel $(uname -r); build $profile
- forwarders pinned to core 0; the echo backend (\`torsion serve echo\`) and \`torsion load\` on core 1
- $(haproxy -v 2>&1 | head -1), \`nbthread 1\`, \`mode tcp\`
- command: \`benches/proxy_bench.sh $secs $conns $rounds\` ($conns connections, 1 message in flight each; $rounds interleaved round(s), medians)
- per round, torsion msg/s: ${trates[*]}; haproxy msg/s: ${hrates[*]}

| forwarder | messages/s | MiB/s (both ways) | forwarder CPU ms per MiB |
|---|---:|---:|---:|
| torsion forward | $t | $(mib "$t") | $tc |
| haproxy | $h | $(mib "$h") | $hc |

torsion / haproxy throughput: **$ratio** (target ≥ 1.0); CPU per MiB: **$(python3 -c "print(f'{$tc/$hc:.2f}' if $hc else '?')")**
MD
echo
cat "$out"
