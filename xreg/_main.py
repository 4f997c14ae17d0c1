"""The ``xreg`` command's entry point: Ctrl-C while xreg itself is still loading is one line and exit 130
(``xreg.cli.main`` handles everything after)."""

import sys


def run() -> int:
    try:
        from xreg.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    return main()
