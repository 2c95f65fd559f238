#!/usr/bin/env bash
# RESP benchmark: redis-benchmark against `torsion serve ... resp` and against redis-server
# (`--save "" --appendonly no --io-threads 1`), each pinned to core 0, the client on core 1,
# interleaved (every round runs each command on both servers, alternating which goes first).
# Reports medians over the rounds of ops/s and server CPU per op (from /proc/<pid>/stat), at
# -P 1 and -P 16, plus memory per key for N keys of 16-byte values (redis: INFO memory and
# RSS; torsion: RSS). Writes OUT/resp_bench.md.
#
# Usage: benches/resp_bench.sh [-n REQUESTS] [-c CLIENTS] [-r ROUNDS] [-k KEYS] [--out DIR]
#        defaults: -n 1000000 -c 50 -r 3 -k 1000000 --out results
# A quick check that the script works: benches/resp_bench.sh -n 20000 -r 1 -k 20000 --out target/resp_check
# Needs redis-server, redis-benchmark and redis-cli (Debian: apt-get install redis-server
# redis-tools; installed if missing and we are root). Every process it starts is ended by PID.
set -euo pipefail
requests=1000000
clients=50
rounds=3
keys=1000000
out=results
while [ $# -gt 0 ]; do
  case "$1" in
    -n) requests=$2; shift 2 ;;
    -c) clients=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -k) keys=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
tests=(ping_inline ping_mbulk set get incr lpush lpop)

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
  else
    echo "needs redis-server and redis-tools (apt-get install redis-server redis-tools)" >&2; exit 2
  fi
fi
cargo build --release --bin torsion -q
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Not our children (started in process substitutions): wait for them to be gone.
  for p in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }

# Starts torsion's resp server on core 0; prints "PID PORT".
start_torsion() {
  local port; port=$(free_port)
  RUST_LOG=warn taskset -c 0 "$CARGO_TARGET_DIR/release/torsion" serve -q \
    --listen "tcp:$port:interface=127.0.0.1" resp >"$work/torsion-$port.log" 2>&1 &
  echo "$! $port"
}
start_redis() {
  local port; port=$(free_port)
  taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --io-threads 1 --daemonize no --logfile "$work/redis-$port.log" &
  echo "$! $port"
}

# CPU ticks (user + system, 1/100 s) of a process.
ticks() { awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

read -r tpid tport < <(start_torsion); pids+=("$tpid")
read -r rpid rport < <(start_redis); pids+=("$rpid")
wait_port "$tport"; wait_port "$rport"

# One measurement: server NAME (pid, port), test, pipeline -> a line of raw.tsv.
measure() {
  local name=$1 pid=$2 port=$3 test=$4 pipe=$5 t0 t1 line rps
  t0=$(ticks "$pid")
  line=$(taskset -c 1 redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -n "$requests" \
    -c "$clients" -P "$pipe" --csv 2>/dev/null | grep -v '^"test"' | head -1)
  t1=$(ticks "$pid")
  rps=$(echo "$line" | cut -d, -f2 | tr -d '"')
  # server CPU per op in µs
  python3 -c "print('\t'.join(['$name','$test','$pipe','$rps',f'{($t1-$t0)/$hz*1e6/$requests:.3f}']))" >>"$work/raw.tsv"
  printf '%-8s %-12s P%-3s %12s ops/s\n' "$name" "$test" "$pipe" "$rps"
}

for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds"
  for pipe in 1 16; do
    for test in "${tests[@]}"; do
      if [ $(( (round + pipe) % 2 )) = 0 ]; then
        measure torsion "$tpid" "$tport" "$test" "$pipe"; measure redis "$rpid" "$rport" "$test" "$pipe"
      else
        measure redis "$rpid" "$rport" "$test" "$pipe"; measure torsion "$tpid" "$tport" "$test" "$pipe"
      fi
    done
  done
done
kill "$tpid" "$rpid" 2>/dev/null || true

# Memory per key: fresh servers, KEYS keys of 16-byte values loaded with redis-cli --pipe.
echo "== memory: $keys keys of 16-byte values"
python3 - "$keys" >"$work/load.resp" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    k = b"key:%012d" % i
    v = b"%016d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, v))
PY
read -r tpid tport < <(start_torsion); pids+=("$tpid")
read -r rpid rport < <(start_redis); pids+=("$rpid")
wait_port "$tport"; wait_port "$rport"
used() { redis-cli -p "$1" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
t_rss0=$(rss_kib "$tpid"); r_rss0=$(rss_kib "$rpid"); r_used0=$(used "$rport")
redis-cli -p "$tport" --pipe <"$work/load.resp" >/dev/null
redis-cli -p "$rport" --pipe <"$work/load.resp" >/dev/null
t_n=$(redis-cli -p "$tport" dbsize); r_n=$(redis-cli -p "$rport" dbsize)
t_rss1=$(rss_kib "$tpid"); r_rss1=$(rss_kib "$rpid"); r_used1=$(used "$rport")

mkdir -p "$out"
python3 - "$work/raw.tsv" "$out/resp_bench.md" <<PY
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, test, pipe, rps, cpu = line.rstrip("\n").split("\t")
    try:
        rows[(name, test, int(pipe))].append((float(rps), float(cpu)))
    except ValueError:
        pass
med = lambda xs: statistics.median(xs) if xs else float("nan")
tests = "${tests[*]}".split()
md = []
md.append("# RESP: torsion vs redis-server, redis-benchmark")
md.append("")
md.append("- when: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); kernel $(uname -r); $(redis-server --version | cut -d' ' -f1-3)")
md.append("- servers pinned to core 0 (\`taskset -c 0\`), redis-benchmark to core 1; redis-server \`--save \"\" --appendonly no --io-threads 1\`; torsion \`torsion serve --listen tcp:PORT resp\`")
md.append("- \`redis-benchmark -t TEST -n $requests -c $clients -P {1,16}\`, $rounds interleaved round(s); medians; CPU per op = server user+system ticks over the run / requests")
md.append("- command: \`benches/resp_bench.sh -n $requests -c $clients -r $rounds -k $keys\`")
md.append("")
md.append("| test | P | torsion ops/s | redis ops/s | torsion / redis | torsion CPU/op | redis CPU/op |")
md.append("|---|---:|---:|---:|---:|---:|---:|")
for pipe in (1, 16):
    for t in tests:
        a = rows[("torsion", t, pipe)]; b = rows[("redis", t, pipe)]
        ta, rb = med([x[0] for x in a]), med([x[0] for x in b])
        ca, cb = med([x[1] for x in a]), med([x[1] for x in b])
        md.append(f"| {t} | {pipe} | {ta:,.0f} | {rb:,.0f} | **{ta/rb:.2f}** | {ca:.2f} µs | {cb:.2f} µs |")
md.append("")
keys = int("$keys")
t_rss = (int("$t_rss1") - int("$t_rss0")) * 1024 / keys
r_rss = (int("$r_rss1") - int("$r_rss0")) * 1024 / keys
r_used = (int("$r_used1") - int("$r_used0")) / keys
md.append(f"Memory for {keys:,} keys (\`key:%012d\`) of 16-byte values (torsion holds $t_n keys, redis $r_n):")
md.append("")
md.append("| server | bytes per key (RSS growth) | bytes per key (INFO used_memory growth) |")
md.append("|---|---:|---:|")
md.append(f"| torsion | {t_rss:.0f} | — |")
md.append(f"| redis-server | {r_rss:.0f} | {r_used:.0f} |")
md.append("")
md.append(f"torsion RSS per key / redis used_memory per key: **{t_rss/r_used:.2f}** (target ≤ 1.5)")
open(sys.argv[2], "w").write("\n".join(md) + "\n")
PY
echo
cat "$out/resp_bench.md"
