#!/bin/sh
# Runs each fuzz target for SECONDS (default 600, as issue 18 asks) one after another, one
# process each (the machines are shared), and prints the last status line of each run.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]     (needs nightly and cargo-fuzz)
# Logs: fuzz/logs/<target>.log; new corpus entries land in fuzz/corpus/<target>/ (minimize
# with `cargo +nightly fuzz cmin -s none -O <target>` before committing), crashes in
# fuzz/artifacts/<target>/ (copy each to fuzz/regressions/<target>/ once fixed).
set -u
cd "$(dirname "$0")"
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-$(cargo +nightly fuzz list)}
mkdir -p logs
for t in $targets; do
    cargo +nightly fuzz run -s none -O "$t" -- -max_total_time="$secs" -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    echo "$t exit=$? $(grep -E '^#[0-9]+' "logs/$t.log" | tail -1)"
    grep -E 'stat::number_of_executed_units|panicked' "logs/$t.log" | head -3
done
