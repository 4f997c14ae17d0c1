"""``python -m xreg.compare``: run one experiment in several frameworks and explain the differences.

Exit status: 0 every run matches every other, 1 some pair mismatches (or a run diverged or failed),
2 bad input (a one-line ``error: ...`` on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from xreg import backends, conventions, data, optimizers, schedules, spec
from xreg.checks import XregInputError

EXIT_MATCH, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + message)
        raise XregInputError(message)


def _value(text: str) -> Any:
    """Parse an option value: true/false, a number, or a comma-separated pair of numbers."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        if "," in text:
            return tuple(float(v) for v in text.split(","))
        as_float = float(text)
        return int(text) if text.strip().lstrip("-").isdigit() else as_float
    except ValueError:
        return text


def _pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise XregInputError(f"{flag} takes KEY=VALUE; got {item!r}.")
        out[key.strip()] = _value(val)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m xreg.compare",
        description="Train one regularized linear/logistic model in PyTorch, JAX/Optax and NumPy with the same "
        "data, init and batch order; compare the runs step by step and explain every difference.",
        epilog="Exit status: 0 all runs match, 1 a mismatch/divergence/failed run, 2 bad input.",
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH.csv", help="numeric CSV with a header (default: the embedded dataset)")
    g.add_argument("--target", metavar="COLUMN", help="label column of --data (required with --data)")
    g.add_argument("--test-fraction", type=float, default=data.DEFAULT_TEST_FRACTION,
                   help="share of rows held out, interleaved evenly (0 = train on all rows; default 0.2)")
    g.add_argument("--map-labels", action="store_true", help="map two label values to 0 (smaller) and 1 (larger)")
    g.add_argument("--allow-many-features", action="store_true",
                   help=f"accept more than {data.MAX_FEATURES} feature columns")
    g = p.add_argument_group("model and optimizer")
    g.add_argument("--model", default="logistic", help="logistic (BCE) or linear (MSE)")
    g.add_argument("--optimizer", default="sgd", help="one of: " + ", ".join(optimizers.OPTIMIZERS))
    g.add_argument("--lr", type=float, default=0.05)
    g.add_argument("--lam", type=float, default=0.1, help="regularization strength")
    g.add_argument("--momentum", type=float, help="momentum (sgd, rmsprop)")
    g.add_argument("--dampening", type=float, help="dampening (sgd)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum (sgd)")
    g.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="any other optimizer option by its torch name, e.g. betas=0.9,0.99 amsgrad=true")
    g.add_argument("--schedule", default="constant", help="one of: " + ", ".join(schedules.NAMES))
    g.add_argument("--schedule-opt", action="append", metavar="KEY=VALUE",
                   help="schedule option, e.g. gamma=0.98, step_size=100, expr=0.98**epoch")
    g.add_argument("--clip-norm", type=float, help="clip the gradient's global norm (torch clip_grad_norm_)")
    g = p.add_argument_group("regularization")
    g.add_argument("--convention", action="append", help="repeatable; one of: " + ", ".join(conventions.NAMES))
    g.add_argument("--no-decay-bias", action="store_true", help="do not regularize the bias")
    g.add_argument("--decoupled-scale", default="lr",
                   help="decoupled decay times the scheduled lr ('lr', torch/optax) or the schedule only ('schedule')")
    g = p.add_argument_group("runs")
    g.add_argument("--backend", action="append", help="repeatable; one of: " + ", ".join(backends.NAMES))
    g.add_argument("--naive", action="store_true", help="add the naive optax port (jax) of the optimizer")
    g.add_argument("--epochs", type=int, default=1000)
    g.add_argument("--batch-size", type=int, help="rows per batch (default: full batch)")
    g.add_argument("--shuffle", action="store_true", help="reshuffle the rows every epoch (shared permutation)")
    g.add_argument("--seed", type=int, default=0, help="seed of the shuffle and of --init normal")
    g.add_argument("--dtype", default="float64", help="float64 or float32")
    g.add_argument("--init", default="zeros", help="zeros, normal or constant")
    g.add_argument("--init-scale", type=float, default=0.1,
                   help="std of --init normal, or the value of every parameter with --init constant")
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help="write the full comparison as JSON")
    g.add_argument("--plot", metavar="PATH.png", help="draw each run's deviation from the reference and its loss")
    g.add_argument("--force", action="store_true", help="overwrite an existing --json or --plot file")
    g.add_argument("--explain", metavar="OPTIMIZER",
                   help="print the update equations, exact optax chain and naive port of OPTIMIZER, then exit")
    return p


def spec_from_args(args: argparse.Namespace) -> spec.ExperimentSpec:
    options = _pairs(args.opt, "--opt")
    for name in ("momentum", "dampening"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.nesterov:
        options["nesterov"] = True
    return spec.ExperimentSpec(
        model=args.model,
        optimizer=args.optimizer,
        lr=args.lr,
        lam=args.lam,
        convention=(args.convention or [optimizers.get(args.optimizer).native_convention])[0],
        options=options,
        decay_bias=not args.no_decay_bias,
        decoupled_scale=args.decoupled_scale,
        epochs=args.epochs,
        batch_size=args.batch_size,
        shuffle=args.shuffle,
        seed=args.seed,
        dtype=args.dtype,
        init=args.init,
        init_scale=args.init_scale,
        schedule=args.schedule,
        schedule_options=_pairs(args.schedule_opt, "--schedule-opt"),
        clip_norm=args.clip_norm,
    )


def load_data(args: argparse.Namespace, model: str) -> spec.Dataset:
    if args.data is None:
        if args.target is not None:
            raise XregInputError("--target needs --data.")
        return data.default_dataset(args.test_fraction)  # 0/1 labels; a linear model regresses them
    if args.target is None:
        raise XregInputError("--data needs --target COLUMN (the label column).")
    return data.load_csv(
        args.data,
        args.target,
        model=model,
        test_fraction=args.test_fraction,
        map_labels=args.map_labels,
        max_features=None if args.allow_many_features else data.MAX_FEATURES,
    )


def run(argv: Sequence[str] | None = None) -> int:
    from xreg import report, runs  # heavy imports after argument parsing

    args = build_parser().parse_args(argv)
    if args.explain:
        from xreg import explain

        print(explain.explain(args.explain))
        return EXIT_MATCH
    base = spec_from_args(args)
    ds = load_data(args, base.model)
    from xreg.plan import batch_sizes

    sizes = batch_sizes(base, ds.n_train)
    requests = runs.requests_from(base, sizes, args.backend, args.convention, args.naive)
    for out in (args.json, args.plot):
        if out:
            report.check_writable(out, force=args.force)  # before training, not after
    comparison = runs.run_all(base, ds, requests)
    print(f"data: {ds.name} ({ds.n_train} train / {ds.X_test.shape[0]} test rows, {ds.n_features} features); "
          f"{base.model} + {base.optimizer}, lr={base.lr:g}, lam={base.lam:g}, {base.epochs} epochs, "
          f"batches of {list(sorted(set(sizes), reverse=True))} rows, {base.dtype}")
    print(report.table(comparison))
    if args.json:
        report.write_atomic(args.json, report.dumps(comparison), force=args.force)
        print(f"wrote {args.json}")
    if args.plot:
        from xreg import plots

        plots.write_png(comparison, args.plot, force=args.force)
        print(f"wrote {args.plot}")
    return EXIT_MATCH if comparison.all_match else EXIT_MISMATCH


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except XregInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
