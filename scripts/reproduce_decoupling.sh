#!/usr/bin/env bash
# Regenerate examples/decoupling/ (figure, summary, JSON): Loshchilov & Hutter's lr x lam grids.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p examples/decoupling
.venv/bin/xreg reproduce decoupling --out examples/decoupling --force
