"""``python -m xreg``: the ``xreg`` command."""

import sys

from xreg.cli import main

sys.exit(main())
