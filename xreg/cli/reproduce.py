"""``xreg reproduce SCENARIO``: regenerate a published result from sweeps (see :mod:`xreg.analysis.reproduce`).

Writes ``SCENARIO.png``, ``SCENARIO.json`` and ``SCENARIO.txt`` into ``--out`` (never over existing
files without ``--force``) and prints the summary.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from xreg.core.checks import XregInputError
from xreg.cli.common import EXIT_MATCH, EXIT_MISMATCH, HelpFormatter, Parser, integer


def build_parser(prog: str = "xreg reproduce") -> Parser:
    from xreg.analysis.reproduce import SCENARIOS

    p = Parser(prog=prog, formatter_class=HelpFormatter,
               description="Regenerate a published result from sweeps: " +
               "; ".join(f"'{k}': {v}" for k, v in SCENARIOS.items()) + ".",
               epilog="Exit status: 0 done and every verified grid point agrees with torch, 1 a point does not, "
               "2 bad input.")  # fmt: skip
    p.add_argument("scenario", help="one of: " + ", ".join(SCENARIOS))
    p.add_argument("--out", default=".", metavar="DIR", help="folder for SCENARIO.png, .json and .txt")
    p.add_argument("--size", type=integer, default=32, metavar="N", help="an N x N lr x lam grid per optimizer")
    p.add_argument("--epochs", type=integer, default=200, help="epochs of every run")
    p.add_argument("--verify", type=integer, default=1, metavar="K",
                   help="grid points re-run in torch per optimizer: the centre, then the corners, then spread out")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    return p


def run(argv: Sequence[str] | None = None, prog: str = "xreg reproduce") -> int:
    from xreg.analysis import reproduce
    from xreg.io.files import check_outputs, write_all
    from xreg.report import reprodoc

    args = build_parser(prog).parse_args(argv)
    if args.scenario not in reproduce.SCENARIOS:
        raise XregInputError(f"unknown scenario {args.scenario!r}; scenarios: {', '.join(reproduce.SCENARIOS)}.")
    if args.epochs < 1:
        raise XregInputError(f"--epochs takes N >= 1; got {args.epochs}.")
    if args.verify is not None and args.verify < 0:
        raise XregInputError(f"--verify takes K >= 0; got {args.verify}.")
    out = Path(args.out)
    if not out.exists():
        raise XregInputError(f"--out: the folder '{out}' does not exist (make it first: mkdir -p '{out}').")
    if not out.is_dir():
        raise XregInputError(f"--out: '{out}' is not a folder.")
    paths = {ext: out / f"{args.scenario}.{ext}" for ext in ("png", "json", "txt")}
    check_outputs({f"--out ({ext})": str(path) for ext, path in paths.items()}, force=args.force)
    show = None
    if sys.stderr.isatty():
        show = lambda what, done, total: print(f"  {what} {done}/{total}", file=sys.stderr)  # noqa: E731
    results = reproduce.run_decoupling(args.size, args.epochs, args.verify, show)
    text = reprodoc.summary(results)
    print(text)
    write_all([(paths["txt"], text + "\n"), (paths["json"], reprodoc.dumps(results)), (paths["png"], reprodoc.render_png(results))],
              force=args.force)  # all three or none
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return EXIT_MATCH if all(r.all_agree for _, r, _ in results) else EXIT_MISMATCH
