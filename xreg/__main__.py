"""``python -m xreg``: the ``xreg`` command."""

import sys

from xreg._main import run

sys.exit(run())
