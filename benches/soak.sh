#!/usr/bin/env bash
# Soak test (not part of CI): one `torsion serve` process with echo, line, chat, HTTP,
# upload and UDP echo services, driven by benches/soak.py's mix of clients for DURATION
# seconds (default 1800: 30 minutes) while a sampler records RSS, descriptors, connections,
# timers pending and the reactor's stats every second. Fails if a resource trends upward
# after warm-up, a well-behaved client sees an error or a wrong byte, or the server panics.
# Writes soak.md (table), samples.csv and soak.svg to OUT (default results/soak).
#
# Usage: benches/soak.sh [--duration SECS] [--out DIR] [--faults SPEC]
#   --faults SPEC: run the server built with the test-only `fault-injection` feature and
#                  TORSION_FAULTS=SPEC: a reset or an early end seen by a well-behaved
#                  client is then a clean error (counted apart); a wrong byte, a wrong
#                  answer or a client stuck for 10 s still fails the run.
# A quick check that the script works: benches/soak.sh --duration 60 --out target/soak_check
# Needs python3. The server it starts is ended by PID.
set -euo pipefail
duration=1800
out=results/soak
faults=
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
if [ -n "$faults" ]; then
  cargo build --quiet --features fault-injection --bin torsion
  bin=target/debug/torsion
else
  cargo build --quiet --release --bin torsion
  bin=target/release/torsion
fi
mkdir -p "$out"
work=$(mktemp -d)
base=$((20000 + RANDOM % 20000))
ports="$base,$((base + 1)),$((base + 2)),$((base + 3)),$((base + 4)),$((base + 5))"
ip=interface=127.0.0.1
TORSION_FAULTS="$faults" RUST_LOG=warn "$bin" serve -q --idle-timeout 60 \
  --listen "tcp:$base:$ip" echo \
  --listen "tcp:$((base + 1)):$ip" line --max-line 16K \
  --listen "tcp:$((base + 2)):$ip" chat \
  --listen "tcp:$((base + 3)):$ip" http \
  --listen "tcp:$((base + 4)):$ip" upload "$work" --framed --overwrite --max-size 1M \
  --listen "udp:$((base + 5)):$ip" echo \
  >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$((base + 3))") 2>/dev/null && break
  sleep 0.1
done
status=0
python3 benches/soak.py ${faults:+--faults} --pid "$server" --log "$out/server.log" --ports "$ports" \
  --duration "$duration" --out "$out" || status=$?
kill -TERM "$server"
wait "$server" || true
exit $status
