#!/usr/bin/env bash
# HTTP hello through HAProxy to 1, 2 and 3 torsion backends (examples/cluster/run.sh:
# network namespaces on a private bridge), with wrk on the client host; then the cost of
# the PROXY header per connection: a churn run (a new connection per request,
# `Connection: close`) through the frontend that sends PROXY v2 and through the one that
# does not, to the same backends.
#
# Pinning on a 2-core machine: every backend on CPU 0, HAProxy and wrk on CPU 1 (say so when
# reporting; three backends then share one core, so the scaling column shows the balancer
# and the method, not the machine — run it on more cores for that).
#
# Usage: benches/cluster_bench.sh [SECONDS] [CONNECTIONS]   (defaults 10 and 50)
#        benches/cluster_bench.sh --quick                     (1 s runs, to check it works)
# Needs root, haproxy, wrk (installed with apt-get if missing and root). Writes nothing to
# the tree; prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
if [ "${1:-}" = "--quick" ]; then secs=1; conns=10; fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
if ! command -v wrk >/dev/null || ! command -v haproxy >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "needs wrk and haproxy (apt-get install wrk haproxy)" >&2; exit 2; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk haproxy >/dev/null
fi
if [ -z "${TORSION:-}" ]; then
  cargo build --release -q --bin torsion
  TORSION="$CARGO_TARGET_DIR/release/torsion"
fi
export TORSION

# wrk's summary as "requests/s p99" (p99 in ms).
summary() {
  awk '/Requests\/sec/ { rps = $2 }
       $1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
                     ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; p99 = ms }
       END { printf "%.0f %.2f\n", rps, p99 }'
}
run() {  # run BACKENDS WRK-ARGS...: prints "requests/s p99"
  local n="$1"; shift
  local cmd="taskset -c 1 wrk -t1 -c$conns -d${secs}s --latency $*"
  RUST_LOG=warn examples/cluster/run.sh --backends "$n" --pin --exec "$cmd" 2>/dev/null | summary
}

echo "| run | backends | requests/s | p99 ms |"
echo "|---|---|---|---|"
for n in 1 2 3; do
  read -r rps p99 < <(run "$n" 'http://$LB/hello')
  echo "| keep-alive, PROXY v2 | $n | $rps | $p99 |"
done
for hdr in "PROXY v2:80" "no PROXY:81"; do
  read -r rps p99 < <(run 3 "-H 'Connection: close' http://\$LB:${hdr#*:}/hello")
  echo "| churn (Connection: close), ${hdr%:*} | 3 | $rps | $p99 |"
done
