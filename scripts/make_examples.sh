#!/usr/bin/env bash
# Regenerate comparisons/examples/: the classic question's report (Markdown, figure embedded) and its figure.
# tests/test_reports.py checks the committed files are what this writes.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/xreg compare comparisons/classic_logistic.toml --force \
  --report comparisons/examples/classic_logistic.md --plot comparisons/examples/classic_logistic.png >/dev/null || [ $? -eq 1 ]
echo "wrote comparisons/examples/classic_logistic.md and .png"
