#!/usr/bin/env bash
# Regression guard (not in CI): runs the quick echo, timer and HTTP benchmarks and compares
# *ratios* — never absolute times, which drift with the machine — against the committed
# baseline in results/check_baseline.txt, printing every ratio that got worse by more than
# 5 %. Every ratio is oriented so that higher is worse:
#   echo/<case>/cpu_reactor_over_mio     server CPU per message, reactor / hand-written mio
#   echo/<case>/cpu_serve_over_reactor   `torsion serve` echo / the reactor's Echo
#   timers/<bench>/wheel_over_heap        time per operation, timing wheel / 4-ary heap
#   http/<conns>/cpu_torsion_over_nginx   server CPU per request, torsion / nginx
#
# Usage: benches/check.sh            run and compare (exit 1 if anything got >5 % worse)
#        benches/check.sh --update   run and write the baseline (commit it)
#        SKIP=http benches/check.sh  skip a part (echo, timers or http; space-separated)
# Runs take a few minutes; run on a quiet machine. The echo and HTTP runs rewrite
# results/echo_baseline.md and results/http_wrk.md; this script restores the committed
# versions afterwards, so the tree stays clean.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
baseline=results/check_baseline.txt
skip=" ${SKIP:-} "
work=$(mktemp -d)
trap 'rm -rf "$work"; git checkout -q -- results/echo_baseline.md results/http_wrk.md 2>/dev/null || true' EXIT
ratios="$work/ratios.txt"; : >"$ratios"

if [[ $skip != *" echo "* ]]; then
  echo "== echo (quick)" >&2
  cargo bench -q --bench echo_baseline -- --quick >"$work/echo.md"
  python3 - "$work/echo.md" >>"$ratios" <<'PY'
import sys
section = None
for line in open(sys.argv[1]):
    if line.startswith("Reactor / mio"):
        section = "cpu_reactor_over_mio"
    elif line.startswith("`torsion serve` echo / reactor"):
        section = "cpu_serve_over_reactor"
    elif line.startswith("Idle memory"):
        section = None
    elif section and line.startswith("| ") and not line.startswith("| case"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        try:
            value = float(cells[2])  # the CPU-per-message column
        except ValueError:
            continue
        print(f"echo/{cells[0].replace(' ', '_')}/{section} {value:.4f}")
PY
fi

if [[ $skip != *" timers "* ]]; then
  echo "== timers (quick)" >&2
  cargo bench -q --bench reactor -- --quick timer_queue >/dev/null
  python3 - "$CARGO_TARGET_DIR/criterion" >>"$ratios" <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
def mean(kind, bench):
    for group in root.glob(f"timer_queue_1M_pending*{kind}"):
        f = group / bench / "new" / "estimates.json"
        if f.exists():
            return json.load(open(f))["mean"]["point_estimate"]
for bench in ["schedule", "cancel", "reset_later", "mass_expiry", "fire_1000_per_pass", "idle_timeout_reset_100k"]:
    w, h = mean("wheel", bench), mean("heap", bench)
    if w and h:
        print(f"timers/{bench}/wheel_over_heap {w / h:.4f}")
PY
fi

if [[ $skip != *" http "* ]]; then
  echo "== http (quick: 3 s, 100 connections, 3 rounds)" >&2
  benches/http_wrk.sh 3 100 3 >"$work/http.txt"
  python3 - results/http_wrk.md >>"$ratios" <<'PY'
import sys
on = False
for line in open(sys.argv[1]):
    if line.startswith("torsion / nginx"):
        on = True
    elif on and line.startswith("| ") and not line.startswith("| connections"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        print(f"http/{cells[0]}/cpu_torsion_over_nginx {float(cells[3]):.4f}")
PY
fi

if [ "${1:-}" = --update ]; then
  { echo "# benches/check.sh baseline: ratios (higher is worse), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
    cat "$ratios"; } >"$baseline"
  echo "wrote $baseline:"; cat "$baseline"; exit 0
fi
[ -f "$baseline" ] || { echo "no $baseline yet: run benches/check.sh --update on a quiet machine and commit it" >&2; cat "$ratios"; exit 2; }
python3 - "$baseline" "$ratios" <<'PY'
import sys
def load(p):
    return {k: float(v) for k, v in (l.split() for l in open(p) if l.strip() and not l.startswith("#"))}
old, new = load(sys.argv[1]), load(sys.argv[2])
worse = 0
for k in sorted(new):
    if k not in old:
        print(f"  new      {k}: {new[k]:.3f} (no baseline)")
        continue
    change = new[k] / old[k] - 1
    mark = "SLOWER" if change > 0.05 else "ok"
    worse += change > 0.05
    print(f"  {mark:<8} {k}: {old[k]:.3f} -> {new[k]:.3f} ({change:+.1%})")
for k in sorted(set(old) - set(new)):
    print(f"  missing  {k} (in the baseline, not measured now)")
print(f"{worse} ratio(s) more than 5 % worse than the baseline")
sys.exit(1 if worse else 0)
PY
