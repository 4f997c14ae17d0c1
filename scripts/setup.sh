#!/usr/bin/env bash
# Create .venv (if missing) and install xreg with its test tools at the pinned versions.
# torch is pinned to 2.13.0, the CPU build on this machine's disk: a looser pin pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
log=$(mktemp)
if ! .venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]" >"$log" 2>&1; then
  grep -v "^WARNING: Location 'file:" "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
.venv/bin/python -c "import torch; assert '+cu' not in torch.__version__, torch.__version__"
