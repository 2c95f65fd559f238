#!/usr/bin/env bash
# HTTP benchmark: `wrk -t1 -c100` against the torsion http_server example's hello route and
# against nginx (one worker) returning the same body, in the same run. Each server is pinned
# to core 0, wrk to core 1. Prints both and writes results/http_wrk.md.
#
# Usage: benches/http_wrk.sh [SECONDS] [CONNECTIONS]     (defaults 10 and 100)
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light; installed if missing and
# we are root). Every process it starts is ended by PID on exit.
set -euo pipefail
secs=${1:-10}
conns=${2:-100}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
  else
    echo "needs wrk and nginx (apt-get install wrk nginx-light)" >&2; exit 2
  fi
fi
cargo build --release --example http_server -q
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }

# torsion
tport=$(free_port)
RUST_LOG=warn taskset -c 0 "$CARGO_TARGET_DIR/release/examples/http_server" --listen "127.0.0.1:$tport" &
pids+=($!)
wait_port "$tport"

# nginx, one worker, the same body
nport=$(free_port)
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000;
  keepalive_timeout 15s;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    location = / { default_type "text/plain; charset=utf-8"; return 200 "Hello, world!\n"; }
  }
}
CONF
taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
wait_port "$nport"

run_wrk() { taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$1/"; }
# CPU ticks (user + system, 1/100 s) of a process and its children: nginx's worker is a
# child of its master.
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
  done
  echo "$total"
}
# Busy ticks of core 0 (user nice system irq softirq steal), to see what else ran there.
core0() { awk '/^cpu0 /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
tpid=${pids[0]}; npid=${pids[1]}
echo "== torsion (http_server example) on core 0, wrk on core 1"
t0=$(ticks "$tpid"); c0=$(core0); run_wrk "$tport" | tee "$work/torsion.txt"; t1=$(ticks "$tpid"); c1=$(core0)
echo "== nginx (1 worker) on core 0, wrk on core 1"
n0=$(ticks "$npid"); d0=$(core0); run_wrk "$nport" | tee "$work/nginx.txt"; n1=$(ticks "$npid"); d1=$(core0)

rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$1"; }
p99() { sed -n 's/^ *99% *\([0-9.]*[a-z]*\)/\1/p' "$1"; }
p50() { sed -n 's/^ *50% *\([0-9.]*[a-z]*\)/\1/p' "$1"; }
errs() { grep -E "Non-2xx|Socket errors" "$1" | tr '\n' ' ' || true; }
t=$(rps "$work/torsion.txt"); n=$(rps "$work/nginx.txt")
ratio=$(python3 -c "print(f'{$t/$n:.2f}')")
# Server CPU per request (µs) and as a share of the core: when both servers reach the same
# requests/s, wrk's core is the limit and CPU per request tells them apart.
cpu_us() { python3 -c "print(f'{($2-$1)*10000/($3*$secs):.1f}')"; }
cpu_pct() { python3 -c "print(f'{($2-$1)/$secs:.0f}')"; }
tcpu=$(cpu_us "$t0" "$t1" "$t"); ncpu=$(cpu_us "$n0" "$n1" "$n")
tpct=$(cpu_pct "$t0" "$t1"); npct=$(cpu_pct "$n0" "$n1")
# Core 0's busy time not spent in the server: other programs disturbing the run.
others() { python3 -c "print(f'{max(0, ($4-$3) - ($2-$1))/$secs:.0f}')"; }
tother=$(others "$t0" "$t1" "$c0" "$c1"); nother=$(others "$n0" "$n1" "$d0" "$d1")
mkdir -p results
cat >results/http_wrk.md <<MD
# HTTP: torsion vs nginx, \`wrk -t1 -c$conns -d${secs}s\`, hello route

- when: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); kernel $(uname -r)
- servers pinned to core 0 (\`taskset -c 0\`), wrk to core 1; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), \`worker_processes 1\`, access log off, the same 14-byte body
- command: \`benches/http_wrk.sh $secs $conns\`

| server | requests/s | p50 | p99 | server CPU | CPU per request | others on core 0 | errors |
|---|---:|---:|---:|---:|---:|---:|---|
| torsion | $t | $(p50 "$work/torsion.txt") | $(p99 "$work/torsion.txt") | $tpct % | $tcpu µs | $tother % | $(errs "$work/torsion.txt") |
| nginx | $n | $(p50 "$work/nginx.txt") | $(p99 "$work/nginx.txt") | $npct % | $ncpu µs | $nother % | $(errs "$work/nginx.txt") |

torsion / nginx requests/s: **$ratio** (server CPU from /proc ticks over the wrk run, 100 % = the whole core; "others on core 0": busy time of the servers' core not spent in the server — more than a few % means the run was disturbed)
MD
echo
cat results/http_wrk.md
