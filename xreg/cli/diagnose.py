"""``xreg diagnose A.npz B.npz``: why two recorded runs differ (see :mod:`xreg.analysis.diagnose`);
``xreg diagnose --update FILE.py:FUNC`` / ``--trajectory RUN.npz``: which convention the user's own update
follows (see :mod:`xreg.analysis.fit_update`). The user's file is executed only when ``--update`` names it.

Exit status: 0 the runs match, or differ by round-off only (a convention fitted and verified, for
--update/--trajectory); 1 they differ by a rule (named, or ``unexplained``; no convention fits); 2 bad input.
"""

from __future__ import annotations

from typing import Sequence

from xreg.core.checks import XregInputError
from xreg.cli.common import EXIT_MATCH, EXIT_MISMATCH, HelpFormatter, Parser, emit, real, integer


def build_parser(prog: str = "xreg diagnose") -> Parser:
    p = Parser(prog=prog, formatter_class=HelpFormatter,
               description="Why do two runs of the same training differ? Aligns two trajectory files (from "
               "xreg.record) by parameter name, finds the first step past round-off, says whether the gradients "
               "or the update differ, and names the cause it re-simulated to round-off, with the fix on each side.")  # fmt: skip
    p.add_argument("runs", nargs="*", metavar="RUN.npz", help="two trajectory files (A, then B)")
    p.add_argument("--map", action="append", metavar="A_NAME=B_NAME", help="pair parameters whose names differ (repeatable)")
    p.add_argument("--dtype", help="the precision the runs computed in (default: their meta, else float32 "
                   "where every value is one, else float64)")  # fmt: skip
    g = p.add_argument_group("your own update (instead of two runs)")
    g.add_argument("--update", metavar="FILE.py:FUNC", help="your step function f(params, X, y, lr, lam) -> params, params a "
                   "1-D array [bias, weights]; it is run --steps times from a random start (this executes FILE.py)")  # fmt: skip
    g.add_argument("--trajectory", metavar="RUN.npz", help="a recorded run of your code on --data with --lr and --lam")
    g.add_argument("--data", metavar="NAME|PATH.csv", help="the rows your update sees (default: the embedded dataset's training split)")
    g.add_argument("--target", metavar="COLUMN", help="label column of a CSV --data")
    g.add_argument("--standardize", action="store_true", help="centre and scale the features (training split's mean and std)")
    g.add_argument("--model", default="logistic", help="logistic or linear")
    g.add_argument("--lr", type=real, default=0.05, help="the learning rate your update is given")
    g.add_argument("--lam", type=real, default=0.1, help="the lam your update is given")
    g.add_argument("--steps", type=integer, default=20, help="steps of your update to fit on")
    g.add_argument("--seed", type=integer, default=0, help="seed of the random start, N(0, 0.1^2) per parameter")
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


def load_function(target: str):
    """``FILE.py:FUNC`` -> the function (the file is executed as a module)."""
    import importlib.util
    from pathlib import Path

    from xreg.analysis import fit_update as fu

    path, sep, name = target.rpartition(":")
    if not sep or not path or not name.isidentifier():
        raise XregInputError(f"--update takes FILE.py:FUNCTION; got {target!r}.")
    file = Path(path)
    if not file.exists():
        raise XregInputError(f"--update: '{file}' does not exist.")
    if not file.is_file():
        raise XregInputError(f"--update: '{file}' is not a file (--update takes FILE.py:FUNCTION).")
    spec = importlib.util.spec_from_file_location(f"_xreg_user_update_{abs(hash(str(file.resolve())))}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        with fu.user_code():
            spec.loader.exec_module(module)
    except XregInputError as exc:
        raise XregInputError(f"--update: running '{file}': {exc}") from None
    except Exception as exc:  # the user's file: its failure in one line
        raise XregInputError(f"--update: running '{file}' raised {type(exc).__name__}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise XregInputError(f"--update: '{file}' has no function {name!r}.")
    return fn


def _fit(args) -> int:
    import numpy as np

    from xreg.analysis import fit_update as fu
    from xreg.core.checks import check_float, check_int
    from xreg.io import data as data_io
    from xreg.io import trajfile
    from xreg.io.files import check_outputs

    if args.update and args.trajectory or args.runs:
        raise XregInputError("give --update FILE.py:FUNC or --trajectory RUN.npz, alone (no run files beside them).")
    if args.model not in ("logistic", "linear"):
        raise XregInputError(f"--model: --update and --trajectory fit a logistic or linear model; got {args.model!r}.")
    check_float("lr", args.lr, 0.0, closed="neither")
    check_float("lam", args.lam, 0.0)
    check_int("steps", args.steps, 1, 100_000)
    check_outputs({"--json": args.json}, inputs=(args.data, args.trajectory, (args.update or "").rpartition(":")[0]), force=args.force)
    data = data_io.load(args.data, args.target, model=args.model, standardize=args.standardize)
    X, y = np.asarray(data.X_train, float), np.asarray(data.y_train, float)
    if args.update:
        fn = load_function(args.update)
        p0 = 0.1 * np.random.default_rng(args.seed).standard_normal(X.shape[1] + 1)
        P = fu.run_update(fn, p0, X, y, args.lr, args.lam, args.steps)
    else:
        P = fu.params_vector(trajfile.load(args.trajectory).params, X.shape[1])
    result = fu.fit(P, X, y, args.lr, args.lam, args.model)
    ok = False
    if result.best is not None:
        ok, result.verified = fu.verify(result, P, data, args.model)
        if not ok:
            result.best = None  # never claimed unverified
    emit(result.to_json(), fu.text(result), args.json, args.force)
    return EXIT_MATCH if ok else EXIT_MISMATCH


def run(argv: Sequence[str] | None = None, prog: str = "xreg diagnose") -> int:
    from xreg.analysis import diagnose as dg
    from xreg.io import trajfile
    from xreg.io.files import check_outputs

    args = build_parser(prog).parse_args(argv)
    if args.update or args.trajectory:
        return _fit(args)
    if len(args.runs) != 2:
        raise XregInputError(f"diagnose takes two trajectory files (A and B); got {len(args.runs)}.")
    check_outputs({"--json": args.json}, inputs=tuple(args.runs), force=args.force)
    a, b = (trajfile.load(p) for p in args.runs)
    d = dg.diagnose(a, b, labels=(args.runs[0], args.runs[1]), mapping=_mapping(args.map), dtype=args.dtype)
    emit(d.to_json(), dg.text(d), args.json, args.force)
    return EXIT_MISMATCH if d.differs else EXIT_MATCH
