"""``xreg diagnose A.npz B.npz``: why two recorded runs differ (see :mod:`xreg.analysis.diagnose`).

Exit status: 0 the runs match, or differ by round-off only; 1 they differ by a rule (named, or
``unexplained``); 2 bad input.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from xreg.checks import XregInputError
from xreg.cli.common import EXIT_MATCH, EXIT_MISMATCH, HelpFormatter, Parser


def build_parser(prog: str = "xreg diagnose") -> Parser:
    p = Parser(prog=prog, formatter_class=HelpFormatter,
               description="Why do two runs of the same training differ? Aligns two trajectory files (from "
               "xreg.record) by parameter name, finds the first step past round-off, says whether the gradients "
               "or the update differ, and names the cause it re-simulated to round-off, with the fix on each side.")  # fmt: skip
    p.add_argument("runs", nargs="*", metavar="RUN.npz", help="two trajectory files (A, then B)")
    p.add_argument("--map", action="append", metavar="A_NAME=B_NAME", help="pair parameters whose names differ (repeatable)")
    p.add_argument("--dtype", help="the precision the runs computed in (default: their meta, else float32 "
                   "where every value is one, else float64)")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="write the diagnosis as JSON ('-': to stdout, instead of the text)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    return p


def _mapping(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        a, sep, b = item.partition("=")
        if not sep or not a.strip() or not b.strip():
            raise XregInputError(f"--map takes A_NAME=B_NAME; got {item!r}.")
        out[a.strip()] = b.strip()
    return out


def run(argv: Sequence[str] | None = None, prog: str = "xreg diagnose") -> int:
    from xreg.analysis import diagnose as dg
    from xreg.io import trajfile
    from xreg.io.files import check_writable, write_atomic

    args = build_parser(prog).parse_args(argv)
    if len(args.runs) != 2:
        raise XregInputError(f"diagnose takes two trajectory files (A and B); got {len(args.runs)}.")
    if args.json and args.json != "-":
        check_writable(args.json, force=args.force)
    a, b = (trajfile.load(p) for p in args.runs)
    d = dg.diagnose(a, b, labels=(args.runs[0], args.runs[1]), mapping=_mapping(args.map), dtype=args.dtype)
    doc = json.dumps(d.to_json(), indent=1, allow_nan=False, default=float)
    if args.json == "-":
        sys.stdout.write(doc + "\n")
    else:
        print(dg.text(d))
        if args.json:
            write_atomic(args.json, doc, force=args.force)
            print(f"wrote {args.json}")
    return EXIT_MISMATCH if d.differs else EXIT_MATCH
