#!/usr/bin/env bash
# What recording costs: `torsion serve --listen tcp:PORT echo` with and without
# `--record FILE --record-no-payload` (the issue's case: lengths only), each pinned to
# core 0, driven by `torsion load` on core 1 (100 connections, 64-byte messages),
# interleaved over several rounds (off, on, off, on, ...). Reports the medians of server
# CPU per message and messages/s, and the ratio on/off; writes OUT/record_overhead.md.
#
# Usage: benches/record_overhead.sh [-r ROUNDS] [-d SECONDS] [-c CONNECTIONS] [--payload] [--out DIR]
#        defaults: -r 5 -d 3 -c 100 --out results   (--payload records the bytes too)
# Every process it starts is ended by PID.
set -euo pipefail
rounds=5; secs=3; conns=100; out=results; payload_flag=--record-no-payload; label="lengths only"
while [ $# -gt 0 ]; do
  case "$1" in
    -r) rounds=$2; shift 2 ;;
    -d) secs=$2; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    --payload) payload_flag=""; label="with payloads"; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --bin torsion -q
bin="$CARGO_TARGET_DIR/release/torsion"
work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
results="$work/results.txt"
for r in $(seq 1 "$rounds"); do
  for mode in off on; do
    port=$(free_port)
    extra=()
    [ "$mode" = on ] && extra=(--record "$work/rec-$r.rec" $payload_flag)
    taskset -c 0 "$bin" serve -q "${extra[@]}" --listen "tcp:$port:interface=127.0.0.1" echo >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 1 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break; sleep 0.1; done
    report=$(taskset -c 1 "$bin" load --addr "127.0.0.1:$port" --connections "$conns" --duration "$secs" --warmup 0.5 --server-pid "$server")
    rate=$(echo "$report" | awk '/throughput/ {print $2}')
    cpu=$(echo "$report" | sed -n 's/.*(\([0-9.]*\) µs per message).*/\1/p')
    kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=""
    size=$( [ "$mode" = on ] && stat -c %s "$work/rec-$r.rec" || echo 0)
    echo "round $r $mode: $rate msg/s, $cpu µs CPU/msg, recording $size B" >&2
    echo "$mode $rate $cpu $size" >> "$results"
    rm -f "$work/rec-$r.rec"
  done
done
mkdir -p "$out"
python3 - "$results" "$out/record_overhead.md" "$rounds" "$secs" "$conns" "$label" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = lambda m, i: statistics.median(float(r[i]) for r in rows if r[0] == m)
off_rate, on_rate = med("off", 1), med("on", 1)
off_cpu, on_cpu = med("off", 2), med("on", 2)
md = f"""# Recording overhead

- `benches/record_overhead.sh -r {sys.argv[3]} -d {sys.argv[4]} -c {sys.argv[5]}`: `torsion serve --listen tcp:PORT echo`, with and without `--record FILE` ({sys.argv[6]}), pinned to core 0; `torsion load --connections {sys.argv[5]}` (64-byte messages) on core 1; {sys.argv[3]} interleaved rounds, medians

| recording | msg/s | server CPU per message |
|---|---:|---:|
| off | {off_rate:,.0f} | {off_cpu:.2f} µs |
| on | {on_rate:,.0f} | {on_cpu:.2f} µs |

Recording on / off: server CPU per message **{on_cpu/off_cpu:.2f}×** (target ≤ 1.3), throughput {on_rate/off_rate:.2f}×.
"""
open(sys.argv[2], "w").write(md)
print(md)
PY
