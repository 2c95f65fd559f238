#!/usr/bin/env bash
# A million connections on one thread (C1M): one `torsion serve ... echo` reactor pinned to
# core 0 holds N idle connections from `torsion load --mode idle` (core 1), spread over
# loopback source addresses 127.0.0.2, 127.0.0.3, … (about 60,000 connections each), while
# a canary connection keeps echoing. Reports the connect rate, the server's RSS per
# connection, the kernel's TCP memory (/proc/net/sockstat), the canary's p99 and how long a
# graceful stop takes. Then the same against the thread-per-connection server
# (examples/threading_echo) to show where it stops. Writes OUT/c1m.md.
#
# Usage (as root: it raises fs.nr_open and the descriptor limit, widens the local port
# range, and puts every setting back at exit):
#   benches/c1m.sh [-n CONNECTIONS] [--hold SECS] [--skip-threading] [--out DIR]
#   defaults: -n 1000000 --hold 20 --out results
# Not in CI. Every process it starts is ended by PID.
set -euo pipefail
n=1000000; hold=20; threading=1; out=results
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --skip-threading) threading=0; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "c1m.sh raises kernel limits: run it as root" >&2; exit 2; }
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --bin torsion --example threading_echo -q
bin="$CARGO_TARGET_DIR/release/torsion"

# Kernel settings, restored at exit.
saved=()
setk() {
  local old; old=$(sysctl -n "$1")
  if sysctl -qw "$1=$2" 2>/dev/null; then saved+=("$1=$old"); else echo "c1m: cannot set $1 (left at $old)" >&2; fi
}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for kv in "${saved[@]}"; do sysctl -qw "$kv" || true; done
}
trap cleanup EXIT
need=$((n * 2 + 100000))
[ "$(sysctl -n fs.nr_open)" -ge "$need" ] || setk fs.nr_open "$need"
[ "$(sysctl -n fs.file-max)" -ge "$need" ] || setk fs.file-max "$need"
setk net.ipv4.ip_local_port_range "1024 65535"
setk net.core.somaxconn 65535
# Each thread of the thread-per-connection server costs about four memory mappings (stack,
# its guard page, Rust's signal stack and its guard): at the default 65,530 it stops near
# 16,000 threads, so it gets room for the count asked.
[ "$(sysctl -n vm.max_map_count)" -ge $((n * 4 + 65536)) ] || setk vm.max_map_count $((n * 4 + 65536))
setk net.ipv4.tcp_max_syn_backlog 65535
limited=""
if ! ulimit -n "$need" 2>/dev/null; then
  # Containers often withhold CAP_SYS_RESOURCE: the hard limit is then the ceiling.
  hard=$(ulimit -Hn); ulimit -n "$hard"
  limited="the per-process descriptor limit: hard limit $hard, not raisable here (no CAP_SYS_RESOURCE)"
  echo "c1m: cannot raise the descriptor limit to $need; $limited" >&2
  [ "$n" -le $((hard - 500)) ] || n=$((hard - 500))
fi

per_source=60000
sources=$(python3 -c "print(','.join(f'127.0.0.{i+2}' for i in range(-(-$n // $per_source))))")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Kernel memory of sockets: the slab caches a TCP connection lives in (both ends of each
# loopback pair, the file, the epoll registration, the port binding), in bytes, plus the
# buffer pages /proc/net/sockstat counts.
kernel_bytes() {
  local slab pages
  slab=$(awk '$1 ~ /^(TCP|sock_inode_cache|filp|eventpoll_epi|tcp_bind_bucket|tcp_bind2_bucket)$/ {s += $2 * $4} END {print s+0}' /proc/slabinfo)
  pages=$(awk '/^TCP:/ {for (i=1;i<=NF;i++) if ($i=="mem") print $(i+1)}' /proc/net/sockstat)
  echo $((slab + pages * $(getconf PAGESIZE)))
}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { { ls "/proc/$1/fd" 2>/dev/null || true; } | wc -l; }

# run KIND PORT PID: holds N idle connections against the server PID on PORT; prints
# "connected seconds rss_kib tcp_pages canary_p99 stop_seconds" (stop only for the reactor).
run() {
  local kind=$1 port=$2 server=$3
  local base_fds base_rss base_tcp
  base_fds=$(fds "$server"); base_rss=$(rss_kib "$server"); base_tcp=$(kernel_bytes)
  taskset -c 1 "$bin" load --mode idle --addr "127.0.0.1:$port" --connections "$n" \
    --duration "$((hold + 600))" --warmup 0 --connect-timeout 600 --connect-batch 2048 \
    --source "$sources" >"$work/$kind-load.txt" 2>&1 &
  local gen=$!; pids+=("$gen")
  local start now last=-1 still=0 count=0 most=0 t0
  t0=$(date +%s.%N)
  while :; do
    sleep 1
    count=$(( $(fds "$server") - base_fds ))
    [ "$count" -gt "$most" ] && most=$count
    now=$(date +%s.%N)
    echo "$kind: $count connections after $(python3 -c "print(f'{$now-$t0:.0f}')") s" >&2
    if [ "$count" -ge "$n" ]; then break; fi
    if [ "$count" -le "$last" ]; then still=$((still + 1)); else still=0; fi
    # Not growing for 15 s (or the server died): as far as it goes.
    if [ "$still" -ge 15 ] || ! kill -0 "$server" 2>/dev/null; then break; fi
    last=$count
  done
  local secs; secs=$(python3 -c "print(f'{$now-$t0:.1f}')")
  local rss tcp; rss=$(( $(rss_kib "$server") - base_rss )); tcp=$(( $(kernel_bytes) - base_tcp ))
  local p99="-"
  if kill -0 "$server" 2>/dev/null; then
    local canary
    canary=$(taskset -c 1 "$bin" load --addr "127.0.0.1:$port" --connections 1 --duration 10 --warmup 1 2>&1 || true)
    p99=$(echo "$canary" | sed -n 's/.*p99 \([0-9.]* [µm]*s\).*/\1/p' | head -1)
    [ -n "$p99" ] || p99="failed"
  fi
  local stop="-" stopped=0
  if [ "$kind" = reactor ] && kill -0 "$server" 2>/dev/null; then
    local s0 s1; s0=$(date +%s.%N); kill -TERM "$server"; stopped=1
    while kill -0 "$server" 2>/dev/null; do sleep 0.05; done
    s1=$(date +%s.%N); stop=$(python3 -c "print(f'{$s1-$s0:.2f}')")
  fi
  kill -9 "$gen" 2>/dev/null || true; wait "$gen" 2>/dev/null || true
  # A server that died by itself (the thread-per-connection one runs out of threads) counts
  # what it held at its most; its memory is gone with it, so none is reported.
  if [ "$stopped" = 0 ] && ! kill -0 "$server" 2>/dev/null; then
    count=$most; p99="died"; rss=-1
  fi
  echo "$count $secs $rss $tcp ${p99// /_} $stop"
}

work=$(mktemp -d)
port=$(free_port)
taskset -c 0 "$bin" serve -q --grace 60 --listen "tcp:$port:interface=127.0.0.1:backlog=65535" echo \
  >"$work/reactor-serve.txt" 2>&1 &
server=$!; pids+=("$server")
sleep 0.5
read -r rc rs rr rt rp rstop < <(run reactor "$port" "$server")
wait "$server" 2>/dev/null || true

tline="| thread per connection | not run | | | | | |"
if [ "$threading" = 1 ]; then
  tport=$(free_port)
  taskset -c 0 "$CARGO_TARGET_DIR/release/examples/threading_echo" --listen "127.0.0.1:$tport" \
    >"$work/threading.txt" 2>&1 &
  tserver=$!; pids+=("$tserver")
  sleep 0.5
  read -r tc ts tr tt tp _ < <(run threading "$tport" "$tserver")
  kill -9 "$tserver" 2>/dev/null || true
  tline="| thread per connection (examples/threading_echo) | $tc | $ts s | $(python3 -c "print(f'{$tr*1024/max($tc,1):.0f} B' if $tr >= 0 else '— (died)')") | $(python3 -c "print(f'{$tt/max($tc,1):.0f}')") B | ${tp//_/ } | — |"
  tdied=$(grep -m1 -iE "panicked|failed|abort|error" "$work/threading.txt" || true)
fi
mkdir -p "$out"
cat >"$out/c1m.md" <<MD
# A million connections on one thread

- when: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); kernel $(uname -r); $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
- \`benches/c1m.sh -n $n --hold $hold\`: server pinned to core 0, \`torsion load --mode idle\` on core 1 with $(echo "$sources" | tr ',' '\n' | wc -l) loopback sources; a canary echo connection (64 B, one in flight, 10 s) once all are up; graceful stop with SIGTERM

| server | connections held | connect time | server RSS per connection | kernel TCP memory per connection | canary p99 | graceful stop |
|---|---:|---:|---:|---:|---:|---:|
| torsion reactor (one thread) | $rc | $rs s | $(python3 -c "print(f'{$rr*1024/max($rc,1):.0f}')") B | $(python3 -c "print(f'{$rt/max($rc,1):.0f}')") B | ${rp//_/ } | $rstop s |
$tline

$( [ -n "${tdied:-}" ] && echo "The thread-per-connection server ended by itself at its most; its last words: \`${tdied}\`" )

$( [ -n "$limited" ] && echo "**Held at most $n of the 1,000,000 asked: what ran out is $limited.** Memory was not the limit: see the per-connection figures for what a million would take." )

Connect rate (reactor): $(python3 -c "print(f'{$rc/max($rs,0.1):,.0f}')") connections/s. Kernel memory per connection: the growth of the slab caches a TCP connection lives in (TCP, sock_inode_cache, filp, eventpoll_epi, tcp_bind_bucket; both ends of each loopback pair, so a client elsewhere would cost about half) plus /proc/net/sockstat's buffer pages, over the connections held.
MD
cat "$out/c1m.md"
rm -rf "$work"
