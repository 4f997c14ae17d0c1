"""``xreg translate --from torch.adam --lr 1e-3 --weight-decay 1e-4``: one torch optimizer setting as
torch code, an exact optax chain, a scratch loop, L2 terms, decoupled decay and scikit-learn's C
(see :mod:`xreg.analysis.translate`)."""

from __future__ import annotations

from typing import Sequence

from xreg.core.checks import XregInputError
from xreg.cli.common import EXIT_MATCH, HelpFormatter, Parser, emit, pairs, real, integer, schedule_of


def build_parser(prog: str = "xreg translate") -> Parser:
    p = Parser(prog=prog, formatter_class=HelpFormatter,
               description="Print every equivalent of one torch.optim setting: torch code, an optax chain that pastes "
               "and runs (import optax, xreg.twins), the scratch update, the L2 coefficient in a mean and a sum loss, "
               "the decoupled rate, scikit-learn's C, and 'no exact equivalent' with the reason where there is none.")  # fmt: skip
    p.add_argument("--from", dest="source", required=True, metavar="torch.OPTIMIZER", help="e.g. torch.adam, torch.sgd; or a "
                   "layer, torch.nn.BatchNorm1d (its arguments as --option num_features=16): the flax.nnx code that computes "
                   "the same, the naive port and what differs; or an lr scheduler, torch.StepLR (--option step_size=30): the "
                   "exact optax schedule, the naive one and what differs")  # fmt: skip
    p.add_argument("--lr", type=real, help="learning rate (default: torch's for the optimizer)")
    p.add_argument("--weight-decay", type=real, help="torch's weight_decay (default: torch's for the optimizer: 0, AdamW 0.01, Muon 0.1)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="a torch option (momentum=0.9, betas=0.9,0.99, "
                   "decoupled_weight_decay=true); repeatable")  # fmt: skip
    p.add_argument("--no-decay", action="append", default=[], metavar="PATTERN", help="parameters left out of the decay (e.g. bias)")
    p.add_argument("--n", "--rows", dest="rows", type=integer, metavar="ROWS", help="training rows (scikit-learn's C)")
    p.add_argument("--batch-size", type=integer, metavar="M", help="rows a step (scratch lam, sum loss; default: ROWS)")
    p.add_argument("--schedule-every", metavar="WHEN", help="an lr scheduler: stepped every 'epoch' (default) or every 'step'")
    p.add_argument("--calls", type=integer, help="an lr scheduler: the scheduler.step() calls of the run (T_max, total_steps "
                   "default to it; default 100)")  # fmt: skip
    p.add_argument("--batches", type=integer, help="an lr scheduler stepped per epoch: optimizer steps an epoch (default 1)")
    p.add_argument("--json", metavar="PATH", help="write the translation as JSON ('-': to stdout, instead of the text)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")
    return p


def _is_optimizer(source: str) -> bool:
    from xreg.analysis.translate import _parse_source

    try:
        _parse_source(source)
    except XregInputError:
        return False
    return True


def run(argv: Sequence[str] | None = None, prog: str = "xreg translate") -> int:
    from xreg.io.files import check_outputs
    from xreg.analysis.translate import translate

    args = build_parser(prog).parse_args(argv)
    check_outputs({"--json": args.json}, force=args.force)
    from xreg.analysis import translate_layers

    from xreg.analysis import translate_schedules

    scheduler = translate_schedules.scheduler_of(args.source)
    given = [f for f, v in (("--schedule-every", args.schedule_every), ("--calls", args.calls), ("--batches", args.batches)) if v is not None]
    if given and scheduler is None and (translate_layers.is_layer(args.source) or _is_optimizer(args.source)):
        raise XregInputError(f"{given[0]} is for an lr scheduler (--from torch.StepLR, ...), not {args.source!r}.")
    if scheduler is not None:
        given = [f for f, v in (("--weight-decay", args.weight_decay), ("--no-decay", args.no_decay or None), ("--rows", args.rows),
                                ("--batch-size", args.batch_size)) if v is not None]  # fmt: skip
        if given:
            raise XregInputError(f"{given[0]} is for a torch optimizer; a scheduler takes its arguments as --option KEY=VALUE.")
        name, options = schedule_of(scheduler, args.option, "--option")
        if args.batches is not None and args.schedule_every == "step":
            raise XregInputError("--batches counts the optimizer steps of an epoch; a scheduler stepped every step does not read it.")
        t = translate_schedules.translate_schedule(name, options, args.lr, args.schedule_every or "epoch", args.calls,
                                                   1 if args.batches is None else args.batches)  # fmt: skip
    elif translate_layers.is_layer(args.source):
        given = [f for f, v in (("--lr", args.lr), ("--weight-decay", args.weight_decay), ("--no-decay", args.no_decay or None),
                                ("--rows", args.rows), ("--batch-size", args.batch_size)) if v is not None]  # fmt: skip
        if given:
            raise XregInputError(f"{given[0]} is for a torch optimizer; a layer takes its arguments as --option KEY=VALUE.")
        t = translate_layers.translate_layer(args.source, pairs(args.option, "--option"))
    else:
        t = translate(args.source, lr=args.lr, weight_decay=args.weight_decay, options=pairs(args.option, "--option"),
                      no_decay=args.no_decay, rows=args.rows, batch_size=args.batch_size)  # fmt: skip
    emit(t.to_json(), t.text(), args.json, args.force)
    return EXIT_MATCH
