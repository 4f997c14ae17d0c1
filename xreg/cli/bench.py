"""``xreg bench``: the project's JAX path against plain NumPy, torch eager and torch.compile on this
machine, with the machine's read bandwidth and each large problem's roofline (see :mod:`xreg.analysis.bench`)."""

from __future__ import annotations

import json
import sys
from typing import Sequence

from xreg.core.checks import XregInputError
from xreg.cli.common import EXIT_MATCH, HelpFormatter, Parser, integer


def build_parser(prog: str = "xreg bench") -> Parser:
    from xreg.analysis import bench

    p = Parser(prog=prog, formatter_class=HelpFormatter,
               description="Time one training (logistic regression, SGD + weight decay, full batch) in the project's "
               "JAX path, a plain NumPy loop, torch eager and torch.compile, on the seed problem and synthetic "
               "100k x 32 and 1M x 32 problems, in float32 and float64; per-step medians, compile time apart, "
               "and the large problems against the memory roofline measured in the same run.")  # fmt: skip
    p.add_argument("--sizes", default=",".join(bench.SIZES), help="comma-separated: " + ", ".join(bench.SIZES))
    p.add_argument("--dtypes", default="float32,float64", help="comma-separated: float32, float64")
    p.add_argument("--repeat", type=integer, default=5, help="timed runs per implementation (the median counts)")
    p.add_argument("--steps", action="append", metavar="SIZE=N", help="steps of one size's runs, e.g. 1m=50 "
                   f"(defaults: {', '.join(f'{k}={v}' for k, v in bench.STEPS.items())})")  # fmt: skip
    p.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (its compiles take ~30 s each)")
    p.add_argument("--no-commands", action="store_true", help="skip the whole-process timings (the default comparison "
                   "and the imports under it, --repeat runs each)")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    return p


def run(argv: Sequence[str] | None = None, prog: str = "xreg bench") -> int:
    from xreg.analysis import bench
    from xreg.io.files import check_outputs, write_atomic

    args = build_parser(prog).parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    dtypes = [s.strip() for s in args.dtypes.split(",") if s.strip()]
    for s in sizes:
        if s not in bench.SIZES:
            raise XregInputError(f"--sizes: unknown size {s!r}; sizes: {', '.join(bench.SIZES)}.")
    for d in dtypes:
        if d not in ("float32", "float64"):
            raise XregInputError(f"--dtypes: unknown dtype {d!r}; dtypes: float32, float64.")
    if not sizes or not dtypes:
        raise XregInputError("--sizes and --dtypes need at least one value each.")
    if args.repeat < 1:
        raise XregInputError(f"--repeat takes N >= 1; got {args.repeat}.")
    steps = {}
    for item in args.steps or []:
        key, sep, val = item.partition("=")
        if not sep or key not in bench.SIZES or not val.isdigit() or int(val) < 1:
            raise XregInputError(f"--steps takes SIZE=N with SIZE one of {', '.join(bench.SIZES)} and N >= 1; got {item!r}.")
        steps[key] = int(val)
    check_outputs({"--json": args.json}, force=args.force, stdout=())
    show = (lambda text: print(f"  {text} ...", file=sys.stderr)) if sys.stderr.isatty() else None
    result = bench.run_bench(sizes, dtypes, args.repeat, not args.no_torch_compile, steps, show, not args.no_commands)
    print(bench.table(result))
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=1), force=args.force)
        print(f"wrote {args.json}")
    return EXIT_MATCH
