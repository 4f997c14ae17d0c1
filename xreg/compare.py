"""``python -m xreg.compare``: the compare subcommand on its own (kept from before ``xreg compare``).

The comparator itself lives in :mod:`xreg.analysis.agreement`; this module is the old entry point only.
"""

if __name__ == "__main__":
    import sys

    from xreg.cli.compare import main

    sys.exit(main())
