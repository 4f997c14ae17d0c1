#!/usr/bin/env bash
# Optional: headless Chromium from Debian's packages, for the test that screenshots an HTML report.
# Without it that one test skips, saying why. Never fatal.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  timeout 300 apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { timeout 120 apt-get update >/dev/null 2>&1 && timeout 300 apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; } \
    || echo "note: chromium could not be installed; the HTML report screenshot test will skip" >&2
else
  echo "note: no chromium (and no root apt-get to install it); the HTML report screenshot test will skip" >&2
fi
exit 0
