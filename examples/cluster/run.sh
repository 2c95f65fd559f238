#!/usr/bin/env bash
# Three torsion hosts behind HAProxy, on one Linux machine, as root: network namespaces are
# the "hosts", on a private bridge that lives in a namespace of its own (nothing touches
# the machine's own network, nothing leaves it).
#
#   10.77.0.100  client   ──┐
#   10.77.0.10   haproxy  ──┤ bridge (in its own namespace)
#   10.77.0.11-13 torsion ──┘ http on :8080 (PROXY v2 from 10.77.0.10 only), health on :8081
#
# Usage: examples/cluster/run.sh [--check] [--requests N] [--backends N] [--pin] [--exec CMD]
#   default  sets up, sends N requests (default 300) through the balancer, prints how they
#            spread, and tears down
#   --check  the scenario tests/cluster.rs runs: spread over all three; each backend logs
#            the real client (10.77.0.100) although the socket's peer is the balancer;
#            kill -9 one backend: no request lost (clients retry, health checks drop it);
#            SIGTERM another under load: it leaves the pool and drains, no request fails;
#            restart the first: it rejoins and is served again.
#   --backends N  start only the first N backends (1-3; the others stay DOWN)
#   --pin    pin the backends to CPU 0 and HAProxy to CPU 1 (taskset; a 2-core machine)
#   --exec CMD  run CMD (through bash) on the client host instead of the load, with
#            LB=10.77.0.10 (:80 balances with PROXY v2, :81 the same backends without it)
#            (benches/cluster_bench.sh drives wrk this way)
# Env: TORSION (the binary; default target/release/torsion, then target/debug/torsion),
#      KEEP=1 leaves the logs in $WORK.
# Needs: root, iproute2 (ip), haproxy, curl. Everything it starts is stopped by PID and the
# namespaces are deleted on exit, failure or Ctrl-C included.
set -euo pipefail

CHECK=0
REQUESTS=300
NBACK=3
PIN=0
EXEC=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1 ;;
    --requests) REQUESTS="$2"; shift ;;
    --backends) NBACK="$2"; shift ;;
    --pin) PIN=1 ;;
    --exec) EXEC="$2"; shift ;;
    *) echo "usage: $0 [--check] [--requests N]" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "cluster: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces)"
for t in ip haproxy curl; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install -y iproute2 haproxy curl)"
done
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TORSION="${TORSION:-}"
if [ -z "$TORSION" ]; then
  for c in "$ROOT/target/release/torsion" "$ROOT/target/debug/torsion"; do
    [ -x "$c" ] && { TORSION="$c"; break; }
  done
fi
[ -n "$TORSION" ] && [ -x "$TORSION" ] || die "no torsion binary: cargo build --release, or set TORSION"

# Names unique to this run, so that runs never collide.
TAG="tsn$$"
SW="$TAG-sw"; LB="$TAG-lb"; CL="$TAG-cl"
BACKENDS=(1 2 3)
case "$NBACK" in 1|2|3) ;; *) die "--backends must be 1, 2 or 3" ;; esac
[ "$CHECK" = 0 ] || [ "$NBACK" = 3 ] || die "--check needs all three backends"
ON0=(); ON1=()
if [ "$PIN" = 1 ]; then ON0=(taskset -c 0); ON1=(taskset -c 1); fi
WORK="$(mktemp -d /tmp/torsion-cluster.XXXXXX)"
PIDS=()
NETNS=()

cleanup() {
  local rc=$?
  set +e
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
  if [ "$rc" != 0 ] || [ "${KEEP:-0}" = 1 ]; then
    echo "cluster: logs kept in $WORK" >&2
    [ "$rc" != 0 ] && tail -n 5 "$WORK"/*.log >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# host NAME ADDR: a namespace with loopback and eth0 on the bridge.
host() {
  local ns="$TAG-$1" addr="$2" v="v$$$1"
  ip netns add "$ns"; NETNS+=("$ns")
  ip link add "$v" netns "$SW" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "$v" master br0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
}

ip netns add "$SW"; NETNS+=("$SW")
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
host lb 10.77.0.10
host cl 10.77.0.100
for b in "${BACKENDS[@]}"; do host "b$b" "10.77.0.1$b"; done

# backend N: starts torsion serve in namespace bN, logging to bN.log (appended).
BPID=()
backend() {
  local b="$1" ip="10.77.0.1$1"
  ip netns exec "$TAG-b$b" "${ON0[@]}" "$TORSION" serve --grace 2 \
    --health "tcp:8081:interface=$ip" \
    --listen "tcp:8080:interface=$ip:proxy=v2:proxy_from=10.77.0.10/32" http \
    --listen "tcp:8082:interface=$ip" http \
    >>"$WORK/b$b.log" 2>&1 &
  BPID[$b]=$!
  PIDS+=("$!")
}
for b in $(seq "$NBACK"); do backend "$b"; done

cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 3
    option redispatch
frontend web
    bind 10.77.0.10:80
    default_backend torsion
backend torsion
    balance roundrobin
    default-server send-proxy-v2 check port 8081 inter 200ms fall 2 rise 2
    server b1 10.77.0.11:8080
    server b2 10.77.0.12:8080
    server b3 10.77.0.13:8080
frontend plain
    bind 10.77.0.10:81
    default_backend torsion_plain
backend torsion_plain
    balance roundrobin
    default-server check port 8081 inter 200ms fall 2 rise 2
    server b1 10.77.0.11:8082
    server b2 10.77.0.12:8082
    server b3 10.77.0.13:8082
listen stats
    mode http
    bind 10.77.0.10:8404
    stats enable
    stats uri /stats
CFG
ip netns exec "$LB" "${ON1[@]}" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=("$!")

# status SERVER: UP / DOWN / ... as HAProxy sees it.
status() {
  ip netns exec "$CL" curl -s --max-time 2 "http://10.77.0.10:8404/stats;csv" 2>/dev/null |
    awk -F, -v s="$1" '$1 == "torsion" && $2 == s { print $18 }'
}
# wait_status SERVER STATE: within 10 s.
wait_status() {
  for _ in $(seq 100); do
    case "$(status "$1")" in "$2"*) return 0 ;; esac
    sleep 0.1
  done
  die "$1 is not $2 for HAProxy after 10 s (it says: $(status "$1"))"
}
# load N OUT: N requests from the client host, one connection each; retried (GET is
# idempotent) on a failed connect or a reset. Appends one status code per line to OUT.
load() {
  ip netns exec "$CL" bash -c '
    for _ in $(seq "$1"); do
      curl -s -o /dev/null -w "%{http_code}\n" --max-time 5 \
        --retry 5 --retry-delay 0 --retry-all-errors http://10.77.0.10/hello || echo fail
    done' _ "$1" >>"$2"
}
# served FILE: how many lines of FILE say 200, and how many do not.
served() { echo "$(grep -c '^200$' "$1" || true) ok, $(grep -vc '^200$' "$1" || true) failed"; }
# seen B: connections backend B logged from the real client.
seen() { grep -c "connection from 10.77.0.100:" "$WORK/b$1.log" || true; }
all_ok() { ! grep -qv '^200$' "$1" || die "$2: $(served "$1")"; }

for b in $(seq "$NBACK"); do wait_status "b$b" UP; done
echo "cluster: $NBACK backend(s) UP behind HAProxy"

if [ -n "$EXEC" ]; then
  ip netns exec "$CL" env LB=10.77.0.10 bash -c "$EXEC"
  exit 0
fi

if [ "$CHECK" = 0 ]; then
  start=$(date +%s.%N)
  load "$REQUESTS" "$WORK/load.txt"
  end=$(date +%s.%N)
  echo "cluster: $REQUESTS requests in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s: $(served "$WORK/load.txt")"
  for b in $(seq "$NBACK"); do echo "  b$b served $(seen "$b") connection(s) from 10.77.0.100"; done
  exit 0
fi

# 1. Spread, and the real client address behind the balancer.
load 30 "$WORK/spread.txt"
all_ok "$WORK/spread.txt" "spread"
for b in "${BACKENDS[@]}"; do
  [ "$(seen "$b")" -ge 5 ] || die "b$b saw $(seen "$b") of 30 connections from the client"
done
! grep -q "connection from 10.77.0.10:" "$WORK"/b*.log || die "a backend saw the balancer as the client"
echo "ok: 30 requests spread $(seen 1)/$(seen 2)/$(seen 3), each backend saw client 10.77.0.100"

# 2. kill -9 b1: requests keep succeeding (retries until the health check drops it).
kill -9 "${BPID[1]}"
wait "${BPID[1]}" 2>/dev/null || true
load 20 "$WORK/kill.txt"
wait_status b1 DOWN
load 10 "$WORK/kill.txt"
all_ok "$WORK/kill.txt" "after kill -9 b1"
echo "ok: b1 killed: $(served "$WORK/kill.txt"); HAProxy marked it DOWN"

# 3. SIGTERM b2 under load: it leaves the pool (health refused), drains, exits.
load 40 "$WORK/term.txt" &
LOADPID=$!
sleep 0.3
kill -TERM "${BPID[2]}"
wait_status b2 DOWN
wait "${BPID[2]}" || true
wait "$LOADPID"
all_ok "$WORK/term.txt" "during SIGTERM of b2"
echo "ok: b2 stopped by SIGTERM under load: $(served "$WORK/term.txt")"

# 4. b1 comes back and is served again.
before=$(seen 1)
backend 1
wait_status b1 UP
load 12 "$WORK/back.txt"
all_ok "$WORK/back.txt" "after b1 came back"
[ "$(seen 1)" -gt "$before" ] || die "b1 is UP but served nothing"
echo "ok: b1 restarted, UP again and serving ($(( $(seen 1) - before )) of 12)"
echo "cluster: check passed"
