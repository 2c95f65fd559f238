#!/usr/bin/env bash
# HTTP benchmark: `wrk -t1` against the torsion http_server example's hello route and
# against nginx (one worker) returning the same body. Each server is pinned to core 0, wrk
# to core 1. The servers run interleaved (torsion, nginx, torsion, nginx, ...) over several
# rounds at each connection count, and the report gives medians: requests/s, p99 and server
# CPU per request. Writes results/http_wrk.md.
#
# Usage: benches/http_wrk.sh [--tls [--close]] [SECONDS] [CONNECTIONS...] [ROUNDS]
#        (defaults 10, "100 1000", 5)
#   e.g. benches/http_wrk.sh 1 "100" 1      a one-second smoke run
#   --tls: HTTPS instead (TLS 1.3, the same throw-away ECDSA P-256 certificate for both,
#          nginx with ssl_protocols TLSv1.3); writes results/https_wrk.md
#   --tls --close: every request on a new connection (`Connection: close`), so each costs a
#          full handshake: handshakes per second; writes results/https_close_wrk.md
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light; installed if missing and
# we are root). Every process it starts is ended by PID on exit.
set -euo pipefail
tls=0; close=0
while [ "${1:-}" = --tls ] || [ "${1:-}" = --close ]; do
  [ "$1" = --tls ] && tls=1
  [ "$1" = --close ] && close=1
  shift
done
secs=${1:-10}
conn_list=${2:-"100 1000"}
rounds=${3:-5}
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

scheme=http; tls_args=(); nginx_ssl=""; wrk_extra=(); name=http_wrk; title="HTTP"
if [ "$tls" = 1 ]; then
  scheme=https; name=https_wrk; title="HTTPS (TLS 1.3)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  tls_args=(--cert "$work/cert.pem" --key "$work/key.pem")
  nginx_ssl="ssl; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; ssl_protocols TLSv1.3"
  if [ "$close" = 1 ]; then
    wrk_extra=(-H "Connection: close"); name=https_close_wrk; title="HTTPS, a new connection (full handshake) per request"
  fi
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do curl -sk -o /dev/null "$scheme://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }

# torsion
tport=$(free_port)
RUST_LOG=warn taskset -c 0 "$CARGO_TARGET_DIR/release/examples/http_server" --listen "127.0.0.1:$tport" "${tls_args[@]}" &
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
    listen 127.0.0.1:$nport $nginx_ssl;
    location = / { default_type "text/plain; charset=utf-8"; return 200 "Hello, world!\n"; }
  }
}
CONF
taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
wait_port "$nport"

run_wrk() { taskset -c 1 wrk -t1 -c"$1" -d"${secs}s" --latency "${wrk_extra[@]}" "$scheme://127.0.0.1:$2/"; }
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
rps() { sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$1"; }
# wrk's 99th percentile in µs (it prints us, ms or s).
p99_us() { sed -n 's/^ *99% *\([0-9.]*\)\([a-z]*\)/\1 \2/p' "$1" | awk '{m=1; if ($2=="ms") m=1000; if ($2=="s") m=1000000; printf "%.1f\n", $1*m}'; }
errs() { grep -cE "Non-2xx|Socket errors" "$1" || true; }
tpid=${pids[0]}; npid=${pids[1]}
# One line per run: server conns round rps p99_us cpu_us_per_request errors
samples="$work/samples.txt"; : >"$samples"
for conns in $conn_list; do
  for round in $(seq 1 "$rounds"); do
    # Interleaved, so drift of the machine over minutes hits both servers alike.
    for server in torsion nginx; do
      if [ "$server" = torsion ]; then pid=$tpid; port=$tport; else pid=$npid; port=$nport; fi
      out="$work/$server-$conns-$round.txt"
      a=$(ticks "$pid"); run_wrk "$conns" "$port" >"$out"; b=$(ticks "$pid")
      r=$(rps "$out")
      cpu=$(python3 -c "print(f'{($b-$a)*10000/max($r*$secs, 1e-9):.2f}')")
      echo "$server $conns $round $r $(p99_us "$out") $cpu $(errs "$out")" | tee -a "$samples"
    done
  done
done

table=$(python3 - "$samples" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for server, conns, _round, rps, p99, cpu, errs in rows:
    by.setdefault((int(conns), server), []).append((float(rps), float(p99), float(cpu), int(errs)))
print("| connections | server | requests/s (median) | p99 µs (median) | CPU µs per request (median) | requests/s min–max | rounds with errors |")
print("|---:|---|---:|---:|---:|---:|---:|")
med = {}
for (conns, server), v in sorted(by.items()):
    m = [statistics.median(x[i] for x in v) for i in range(3)]
    med[(conns, server)] = m
    lo, hi = min(x[0] for x in v), max(x[0] for x in v)
    print(f"| {conns} | {server} | {m[0]:.0f} | {m[1]:.1f} | {m[2]:.2f} | {lo:.0f}–{hi:.0f} | {sum(1 for x in v if x[3])} |")
print()
print("torsion / nginx (medians):")
print()
print("| connections | requests/s | p99 | CPU per request |")
print("|---:|---:|---:|---:|")
for conns in sorted({c for c, _ in med}):
    t, n = med.get((conns, "torsion")), med.get((conns, "nginx"))
    if t and n:
        print(f"| {conns} | {t[0]/n[0]:.2f} | {t[1]/n[1]:.2f} | {t[2]/n[2]:.2f} |")
# The machine drifts over minutes by more than the gap measured: each round's pair ran
# back to back, so the ratio within a round is the steadier figure.
rounds = {}
for server, conns, rnd, rps, p99, cpu, errs in rows:
    rounds.setdefault((int(conns), int(rnd)), {})[server] = (float(rps), float(p99), float(cpu))
print()
print("torsion / nginx within each round (the pair ran back to back), median over the rounds:")
print()
print("| connections | requests/s | p99 | CPU per request | CPU per request, each round |")
print("|---:|---:|---:|---:|---|")
for conns in sorted({c for c, _ in rounds}):
    pairs = [v for (c, _), v in sorted(rounds.items()) if c == conns and len(v) == 2]
    if not pairs:
        continue
    r = [[p["torsion"][i] / p["nginx"][i] for p in pairs] for i in range(3)]
    each = " ".join(f"{x:.2f}" for x in r[2])
    print(f"| {conns} | {statistics.median(r[0]):.2f} | {statistics.median(r[1]):.2f} | {statistics.median(r[2]):.2f} | {each} |")
PY
)
mkdir -p results
cat >"results/$name.md" <<MD
# $title: torsion vs nginx, \`wrk -t1 -d${secs}s\`, hello route, $rounds interleaved rounds

- when: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); kernel $(uname -r)
- servers pinned to core 0 (\`taskset -c 0\`), wrk to core 1; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), \`worker_processes 1\`, access log off, the same 14-byte body
- each round runs torsion then nginx at each connection count; every figure is the median over the rounds (the last table: the median of each round's own ratio); server CPU from /proc ticks (1/100 s) of the server process and its children over each wrk run
- targets: $( [ "$tls" = 1 ] && echo "requests/s ≥ 1.0× nginx, CPU per request ≤ 1.1× nginx" || echo "CPU per request ≤ 0.85× nginx" )
- command: \`benches/http_wrk.sh $( [ "$tls" = 1 ] && echo "--tls " )$( [ "$close" = 1 ] && echo "--close " )$secs "$conn_list" $rounds\`

$table
MD
echo
cat "results/$name.md"
