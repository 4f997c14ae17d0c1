"""``xreg sweep``: one experiment over a grid of hyperparameters; the grid in JAX (vmapped, one
compilation per structure, sharded over the devices), a sample of its points re-run in torch and NumPy.

Exit status: 0 every verified point agrees with the grid, 1 some point does not (or a run failed),
2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from xreg.core.checks import XregInputError, check_choice
from xreg.cli import compare
from xreg.cli.common import EXIT_MATCH, EXIT_MISMATCH, integer

RANKS = ("final_loss", "train_accuracy", "test_accuracy")


def build_parser(prog: str = "xreg sweep") -> argparse.ArgumentParser:
    p = compare.build_parser(
        prog,
        sweep=True,
        description="Train one experiment over a grid of numeric hyperparameters: the whole grid in JAX as one "
        "vmapped, jit-compiled computation per structure, sharded over every device; the corners and the centre "
        "(or --verify K points) re-run in torch and NumPy and checked against the grid.",
        epilog="Axes: NAME=START:STOP:COUNT (linear) or NAME=log:START:STOP:COUNT (log-spaced); NAME is lr, lam, "
        "clip_norm, beta1, beta2 or a numeric optimizer option (momentum, eps, alpha, ...); several --sweep flags "
        "form a grid. Exit status: 0 every verified point agrees, 1 a point disagrees or a run failed, 2 bad input.",
    )
    g = p.add_argument_group("sweep")
    g.add_argument("--sweep", action="append", metavar="NAME=[log:]START:STOP:COUNT", help="repeatable; one axis")
    g.add_argument("--verify", type=integer, metavar="K",
                   help="re-run K grid points in the other backends (default: the corners and the centre; 0: none)")
    g.add_argument("--rank", help="order of the best points: " + ", ".join(RANKS) +
                   " (default: test_accuracy where there is a test split, else final_loss)")  # fmt: skip
    g.add_argument("--top", type=integer, default=5, help="best points shown")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("hosts (JAX's distributed runtime; one process per host, the same command on each)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    g.add_argument("--num-processes", type=integer, metavar="N", help="processes in the run")
    g.add_argument("--process-id", type=integer, metavar="I", help="this process, 0..N-1")
    return p


def _distributed(args: argparse.Namespace) -> None:
    given = [v is not None for v in (args.coordinator, args.num_processes, args.process_id)]
    if not any(given):
        return
    if not all(given):
        raise XregInputError("--coordinator, --num-processes and --process-id go together.")
    if args.num_processes < 1 or not 0 <= args.process_id < args.num_processes:
        raise XregInputError(f"--process-id must be in 0..{args.num_processes - 1}; got {args.process_id}.")
    host, sep, port = args.coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise XregInputError(f"--coordinator takes HOST:PORT; got {args.coordinator!r}.")
    import jax

    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)


def run(argv: Sequence[str] | None = None, prog: str = "xreg sweep") -> int:
    from xreg.analysis import sweep
    from xreg.io.files import check_outputs, write_atomic
    from xreg.report import sweepdoc

    args = build_parser(prog).parse_args(argv)
    if args.convention and len(args.convention) > 1:
        raise XregInputError("A sweep runs one convention; give --convention once.")
    if args.rank is not None:
        check_choice("rank", args.rank, RANKS)
    if args.verify is not None and args.verify < 0:
        raise XregInputError(f"--verify takes K >= 0; got {args.verify}.")
    if args.top < 1:
        raise XregInputError(f"--top takes N >= 1; got {args.top}.")
    verify_backends = tuple(dict.fromkeys(args.backend or ["torch", "numpy"]))
    for name in verify_backends:
        if name not in ("torch", "numpy"):
            raise XregInputError(f"--backend in a sweep names a verifying backend: torch or numpy; got {name!r}.")
    axes = [sweep.parse_axis(text) for text in args.sweep or []]
    base = compare.spec_from_args(args)
    sweep.check_axes(base, axes)
    if args.plot and len(axes) > 2:
        raise XregInputError(f"--plot draws one or two axes; this sweep has {len(axes)}.")
    ds = compare.load_data(args, base.model)
    check_outputs({"--json": args.json, "--plot": args.plot}, inputs=(args.data, args.init_from), force=args.force)
    from xreg import backends

    try:  # JAX loads (within the address-space limit) and starts (a JAX_PLATFORMS it has no plugin for): else bad input
        jax_backend = backends.load("jax")
        _distributed(args)
        jax_backend.devices(None)
    except backends.BackendUnavailable as exc:
        raise XregInputError(f"{exc}.") from None
    import jax

    leader = jax.process_index() == 0
    with _progress(not args.no_progress and leader) as note:
        result = sweep.run_sweep(base, ds, axes, args.verify, verify_backends, note)
    if not leader:  # every process computed its shards and gathered the grid; one of them reports
        return EXIT_MATCH if result.all_agree else EXIT_MISMATCH
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json == "-" else print  # '-': the JSON alone on stdout
    say(f"data: {ds.name} ({ds.n_train} train / {ds.X_test.shape[0]} test rows, {ds.n_features} features); "
        f"{base.model} + {base.optimizer} ({base.convention}), {base.epochs} epochs, {base.dtype}")  # fmt: skip
    say(sweepdoc.table(result, args.rank, args.top))
    if args.json == "-":
        sys.stdout.write(sweepdoc.dumps(result, args.rank, args.top))
    elif args.json:
        write_atomic(args.json, sweepdoc.dumps(result, args.rank, args.top), force=args.force)
        say(f"wrote {args.json}")
    if args.plot:
        write_atomic(args.plot, sweepdoc.render_png(result, args.rank), force=args.force)
        say(f"wrote {args.plot}")
    return EXIT_MATCH if result.all_agree else EXIT_MISMATCH


class _progress:
    """A rich progress bar on stderr (a terminal only), fed by ``note(what, done, total)``."""

    def __init__(self, on: bool):
        self.on = on and sys.stderr.isatty()

    def __enter__(self):
        if not self.on:
            return lambda *a: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), transient=True, console=_console())  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task("sweep", total=1)

        def note(what: str, done: int, total: int) -> None:
            self.bar.update(self.task, description=what, completed=done, total=total)

        return note

    def __exit__(self, *exc):
        if self.on:
            self.bar.stop()
        return False


def _console():
    from rich.console import Console

    return Console(file=sys.stderr)
