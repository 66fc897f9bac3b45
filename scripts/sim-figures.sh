#!/usr/bin/env bash
# Wall time and metrics of the reference simulations: the default fleet and 200 instances.
# Usage: bash scripts/sim-figures.sh [out-root]   (default /tmp/sim-figures)
set -euo pipefail
cd "$(dirname "$0")/.."
out_root="${1:-/tmp/sim-figures}"
mkdir -p "$out_root"

figures() {
  local label="$1"; shift
  local out="$out_root/$label"
  local start end
  start=$(date +%s.%N)
  npm run --silent simulate -- --out "$out" "$@" >"$out_root/$label.log" 2>&1 || echo "($label: simulate exited $?; see $out_root/$label.log)"
  end=$(date +%s.%N)
  printf '== %s: npm run simulate -- %s\n' "$label" "$*"
  printf 'wall (incl. startup, synth if stale): %.1f s\n' "$(echo "$end - $start" | bc)"
  grep -E '^(execution:|state transitions|lambda invocations:|aws api calls:|note:)' "$out_root/$label.log" || true
  if [ -f "$out/report.json" ]; then
    node -e 'const r=require(process.argv[1]);console.log("totals:",JSON.stringify(r.totals))' "$out/report.json"
  fi
  echo
}

figures default
figures fleet200 --instances 200 --seed 1

# The invariants of the 200-instance run: stopped ones stopped again, no command before a completed snapshot.
npx tsx scripts/check-sim-run.ts "$out_root/fleet200"
