#!/usr/bin/env bash
# Makes sure the non-npm tools the tests call are present: shellcheck and chromium (Debian), cfn-lint
# and moto (Python). Installs what is missing when it can, else says how.
set -euo pipefail

missing=0
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "ensure-tools: installing shellcheck (apt-get)"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }; then
    echo "ensure-tools: shellcheck is missing: apt-get install shellcheck" >&2; missing=1
  fi
fi

# The approval page test drives Debian's Chromium through playwright-core (which downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "ensure-tools: installing chromium (apt-get)"
  if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    echo "ensure-tools: chromium is missing: apt-get update && apt-get install -y chromium" >&2; missing=1
  fi
fi

if ! command -v cfn-lint >/dev/null 2>&1; then
  echo "ensure-tools: installing cfn-lint (pip)"
  python3 -m pip install --quiet cfn-lint || { echo "ensure-tools: cfn-lint is missing: pip install cfn-lint" >&2; missing=1; }
fi

if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  echo "ensure-tools: installing moto (pip)"
  python3 -m pip install --quiet 'moto[server]' || { echo "ensure-tools: moto is missing: pip install 'moto[server]'" >&2; missing=1; }
fi

exit "$missing"
