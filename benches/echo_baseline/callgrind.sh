#!/usr/bin/env bash
# User-space instructions per message of one echo server, counted by callgrind.
#
# Usage: benches/echo_baseline/callgrind.sh reactor|mio [CASE] [SHORT_S] [LONG_S]
#   CASE: part of a case name of echo_baseline.rs (default "100 connections").
# Runs the server under `valgrind --tool=callgrind` twice, loads it for SHORT_S and LONG_S
# seconds (defaults 1.5 and 4.5), and prints (Ir_long - Ir_short) / (msgs_long - msgs_short):
# the fixed costs (start-up, connects, teardown) cancel out. Kernel work is not counted.
# Needs valgrind; builds the bench binary first. Every step is bounded by `timeout`.
set -euo pipefail
kind=${1:?reactor or mio}
case_name=${2:-100 connections}
short=${3:-1.5}
long=${4:-4.5}
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
bin=$(cargo bench --bench echo_baseline --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*echo_baseline[^"]*\)".*/\1/p' | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One server run under callgrind, loaded for $1 seconds; prints "IR MESSAGES".
measure() {
  mkfifo "$work/stdin"
  timeout 300 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$bin" --serve "$kind" - <"$work/stdin" >"$work/port" 2>"$work/valgrind.log" &
  local vg=$!
  exec 3>"$work/stdin" # the server exits when this closes
  for _ in $(seq 1 200); do [ -s "$work/port" ] && break; sleep 0.1; done
  local port
  port=$(head -1 "$work/port")
  timeout 120 "$bin" --load "127.0.0.1:$port" "$case_name" "$1" >"$work/load.txt"
  exec 3>&-
  wait "$vg"
  local ir msgs
  ir=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$work/cg.out" | head -1)
  msgs=$(sed -n 's/^MESSAGES \([0-9]*\)/\1/p' "$work/load.txt")
  rm -f "$work/stdin" "$work/port" "$work/cg.out"
  echo "$ir $msgs"
}

read -r ir1 m1 < <(measure "$short")
read -r ir2 m2 < <(measure "$long")
echo "$kind, \"$case_name\": $ir1 Ir / $m1 msgs, $ir2 Ir / $m2 msgs"
echo "$kind: $(( (ir2 - ir1) / (m2 - m1) )) user-space instructions per message"
