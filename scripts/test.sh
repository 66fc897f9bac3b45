#!/usr/bin/env bash
# npm test: type-check, then every jest suite (unit, CDK, lint of template/ASL/scripts, end-to-end
# simulation), then one plain closing line with the counts.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-tools.sh
npx tsc --noEmit -p .

mkdir -p .tmp
status=0
npx jest --ci --json --outputFile=.tmp/jest-results.json "$@" || status=$?
node -e '
  const r = require("./.tmp/jest-results.json");
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  if (r.numTotalTests === 0) { console.error("no test ran"); process.exit(1); }
' || status=1
exit "$status"
