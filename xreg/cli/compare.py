"""``xreg compare`` (also ``python -m xreg.compare``): run one experiment in several frameworks and
explain the differences. The only module that knows the compare flags.

Exit status: 0 every run matches every other, 1 some pair mismatches (or a run diverged or failed),
2 bad input (a one-line ``error: ...`` on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from xreg import backends, models
from xreg.cli.common import EXIT_MATCH, EXIT_MISMATCH, HelpFormatter, Parser, pairs, real, integer, schedule_of
from xreg.core import spec
from xreg.core.plan import RECORD_BUDGET_GIB
from xreg.core.checks import XregInputError
from xreg.io import data
from xreg import optimizers
from xreg.optimizers import muon
from xreg.semantics import layers as layer_conventions
from xreg import schedules
from xreg.semantics import accumulation, clipping, conventions, losses, resume


DESCRIPTION = ("Train one regularized model (linear, logistic, softmax, an MLP or a small CNN) in PyTorch, "
               "JAX/Optax and NumPy with the same data, initial parameters and batch order; compare the runs step "
               "by step and explain every difference.")


def _taking(option: str) -> str:
    """The optimizers that take ``option`` (a flag's help)."""
    return ", ".join(n for n, o in optimizers.OPTIMIZERS.items() if option in o.defaults)


def _data_flags(p: argparse.ArgumentParser, sweep: bool) -> None:
    """Where the rows come from: a shipped dataset or a CSV, its split and scaling."""
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="NAME|PATH.csv",
                   help=f"a shipped dataset ({', '.join(data.SKLEARN_DATASETS)}) or a numeric CSV with a header "
                   "(default: the embedded 4-feature binary dataset)")  # fmt: skip
    g.add_argument("--target", metavar="COLUMN", help="label column of a CSV --data (required with a CSV)")
    g.add_argument("--delimiter", default=",", help="field separator of a CSV --data")
    g.add_argument("--drop", action="append", metavar="COLUMN", help="repeatable; a CSV column that is not a feature (text is fine)")
    g.add_argument("--drop-missing", action="store_true", help="drop every CSV row with an empty or NaN cell (default: such a cell is an error)")
    g.add_argument("--test-fraction", type=real, default=data.DEFAULT_TEST_FRACTION,
                   help="share of rows held out, interleaved evenly (0 = train on all rows)")
    g.add_argument("--standardize", action="store_true",
                   help="centre and scale each feature by the training split's mean and std (both splits)")
    g.add_argument("--map-labels", action="store_true", help="map the sorted distinct labels to 0, 1, ..., K-1")
    g.add_argument("--allow-many-features", action="store_true",
                   help=f"accept more than {data.MAX_FEATURES} feature columns")


def _model_flags(p: argparse.ArgumentParser, sweep: bool) -> None:
    """The model, the torch optimizer by its torch names, its schedule and clipping."""
    g = p.add_argument_group("model and optimizer")
    g.add_argument("--model", default="logistic", help="one of: " + ", ".join(models.MODELS))
    g.add_argument("--hidden", metavar="N[,N...]", help="hidden widths of --model mlp, one per hidden layer, e.g. 32,16 "
                   f"(default {models.DEFAULT_HIDDEN})")  # fmt: skip
    g.add_argument("--activation", help="activation of --model mlp and cnn: tanh (default), relu, gelu (exact, torch's default) "
                   "or gelu-tanh (the tanh approximation, flax's default)")  # fmt: skip
    g.add_argument("--norm", help="norm after each hidden layer of --model mlp (after the conv of --model cnn): none "
                   "(default), batch (torch's BatchNorm1d/2d) or layer (LayerNorm)")  # fmt: skip
    g.add_argument("--dropout", type=real, help="dropout probability after each hidden activation of --model mlp (after "
                   "the pooling of --model cnn), in [0, 1); the masks are drawn once from --seed and shared by every backend")  # fmt: skip
    g.add_argument("--channels", type=integer, help=f"--model cnn: output channels of its conv2d (default {models.DEFAULT_CONV['channels']}); "
                   "the cnn reads each row as the dataset's image (digits: 1 x 8 x 8)")  # fmt: skip
    g.add_argument("--kernel-size", type=integer, help=f"--model cnn: the conv's k x k kernel (default {models.DEFAULT_CONV['kernel_size']})")
    g.add_argument("--stride", type=integer, help=f"--model cnn: the conv's stride (default {models.DEFAULT_CONV['stride']})")
    g.add_argument("--padding", type=integer, help="--model cnn: the conv's zero padding on every side, torch's padding=P "
                   f"(default {models.DEFAULT_CONV['padding']})")  # fmt: skip
    g.add_argument("--pool", help="--model cnn: max (default) or avg pooling")
    g.add_argument("--pool-size", type=integer, help=f"--model cnn: the q x q pooling window and stride (default {models.DEFAULT_CONV['pool_size']})")
    g.add_argument("--optimizer", default=optimizers.DEFAULT, help="one of: " + ", ".join(optimizers.OPTIMIZERS))
    g.add_argument("--lr", type=real, default=0.05, help="base learning rate")
    g.add_argument("--lam", type=real, default=0.1, help="regularization strength")
    g.add_argument("--momentum", type=real, help=f"momentum ({_taking('momentum')})")
    g.add_argument("--dampening", type=real, help=f"dampening ({_taking('dampening')})")
    g.add_argument("--nesterov", action="store_true", help=f"Nesterov momentum ({_taking('nesterov')})")
    g.add_argument("--muon-others", metavar="NAME", help="--optimizer muon: the class of the parameters that are not "
                   "2-D, with torch's defaults and the same lr and weight_decay: " + ", ".join(muon.OTHERS) + f" (default {muon.OTHERS[0]})")
    g.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="any other optimizer option by its torch name, e.g. betas=0.9,0.99 amsgrad=true")
    g.add_argument("--schedule", default="constant", metavar="NAME", help="a torch.optim.lr_scheduler class, or constant "
                   "(default); NAME or NAME(key=value, ...): " + ", ".join(schedules.NAMES[1:]))  # fmt: skip
    g.add_argument("--schedule-opt", action="append", metavar="KEY=VALUE",
                   help="repeatable; a scheduler option by its torch name, e.g. gamma=0.98, milestones=30,80, "
                   "expr=0.98**epoch, schedulers='LinearLR(total_iters=5), CosineAnnealingLR(T_max=95)'")  # fmt: skip
    g.add_argument("--schedule-every", default="epoch", metavar="WHEN",
                   help="step the scheduler after every epoch (default, torch's usual loop) or every optimizer step ('step')")
    g.add_argument("--accumulate", type=integer, default=1, metavar="K", help="gradient accumulation: K batches (micro-batches) "
                   "per optimizer step, torch's (loss/K).backward() each, then one step(); the epoch's batches must split into groups of K")  # fmt: skip
    g.add_argument("--resume-at", type=integer, metavar="K", help="every backend saves its whole state after K optimizer steps "
                   "(torch: state_dicts through torch.save/torch.load), rebuilds from it and goes on: the run must equal the uninterrupted one")  # fmt: skip
    g.add_argument("--loss-reduction", default="mean", metavar="HOW", help="the loss over a batch: 'mean' (default) or 'sum' (torch's reduction)")
    g.add_argument("--class-weight", metavar="W0,W1,...", help="CrossEntropyLoss's weight, one per class (its mean divides by the "
                   "sum of the rows' weights)")  # fmt: skip
    g.add_argument("--label-smoothing", type=real, metavar="EPS", help="CrossEntropyLoss's label_smoothing: eps/K on every class")
    g.add_argument("--clip-norm", type=real, help="clip the gradient's global norm (torch clip_grad_norm_, before weight_decay)")
    g.add_argument("--clip-norm-type", type=real, metavar="P", help="--clip-norm's p-norm: 2 (default), any p >= 1, or inf (the largest |g|)")
    g.add_argument("--clip-per-parameter", action="store_true", help="--clip-norm each parameter by its own norm (a loop of "
                   "clip_grad_norm_, Keras's clipnorm), not all of them together")  # fmt: skip
    g.add_argument("--clip-error-if-nonfinite", action="store_true", help="--clip-norm with torch's error_if_nonfinite=True: "
                   "the run stops at the first step whose gradient norm is nan or inf (torch raises there)")  # fmt: skip
    g.add_argument("--clip-value", type=real, metavar="V", help="clamp every gradient element to [-V, V] (torch clip_grad_value_)")


def _regularization_flags(p: argparse.ArgumentParser, sweep: bool) -> None:
    """How strongly and where the decay enters, and which parameters it leaves out."""
    g = p.add_argument_group("regularization")
    if sweep:
        g.add_argument("--convention", action="append", help="one of: " + ", ".join(conventions.NAMES) +
                       " (default: the optimizer's own; 'torch' is the old name of 'coupled')")  # fmt: skip
    else:
        g.add_argument("--convention", action="append", help="repeatable; one of: " + ", ".join(conventions.NAMES)
                       + " ('torch' is the old name of 'coupled')")  # fmt: skip
    g.add_argument("--no-decay", action="append", metavar="PATTERN",
                   help="repeatable; leave parameters matching PATTERN (fnmatch on names; 'bias' matches every "
                   "*bias) out of the regularization")  # fmt: skip
    g.add_argument("--no-decay-bias", action="store_true", help="alias of --no-decay bias")
    g.add_argument("--group-decay", action="append", metavar="PATTERN=VALUE",
                   help="repeatable; regularize parameters matching PATTERN with strength VALUE instead of --lam")
    g.add_argument("--decoupled-scale", default="lr",
                   help="decoupled decay times the scheduled lr ('lr', torch/optax) or the schedule only ('schedule')")


def _run_flags(p: argparse.ArgumentParser, sweep: bool) -> None:
    """Which runs, how long, in which precision and on which device, from which start."""
    g = p.add_argument_group("runs")
    if sweep:
        g.add_argument("--backend", action="append",
                       help="repeatable; a backend that re-runs the verified points: torch or numpy (default: both)")
    else:
        g.add_argument("--backend", action="append", help="repeatable; one of: " + ", ".join(backends.ALL))
        g.add_argument("--naive", action="store_true", help="add the naive port (jax): the optimizer's optax alias and, for "
                       "--model mlp/cnn, flax's layers with torch's arguments copied literally (every layer convention "
                       "that acts on the model; see xreg explain layers)")  # fmt: skip
        g.add_argument("--naive-layer", action="append", metavar="CODE", help="repeatable; the naive port with only these "
                       "layer conventions (implies --naive): " + ", ".join(layer_conventions.CODES))  # fmt: skip
        g.add_argument("--naive-accumulate", action="append", metavar="CODE", help="repeatable; the naive port accumulates as a "
                       "porter does first (implies --naive): " + ", ".join(accumulation.CODES))  # fmt: skip
        g.add_argument("--naive-resume", action="append", metavar="CODE", help="repeatable; the naive port resumes with a classic "
                       "bug (implies --naive): " + ", ".join(resume.CODES))  # fmt: skip
        g.add_argument("--naive-loss", action="append", metavar="CODE", help="repeatable; the naive port also computes the loss "
                       "as a porter does first (implies --naive): " + ", ".join(losses.CODES))  # fmt: skip
        g.add_argument("--naive-clip", action="append", metavar="CODE", help="repeatable; the naive port also clips as a porter "
                       "does first (implies --naive): " + ", ".join(clipping.CODES))  # fmt: skip
        g.add_argument("--naive-schedule", action="append", metavar="CODE", help="repeatable; the naive port also ports the "
                       "schedule as a porter does first, with these differences (implies --naive; 'all': every one that "
                       "acts): " + ", ".join(schedules.NAIVE_CODES))  # fmt: skip
    g.add_argument("--epochs", type=integer, default=1000, help="passes over the training rows")
    g.add_argument("--batch-size", type=integer, help="rows per batch (default: full batch)")
    g.add_argument("--shuffle", action="store_true", help="reshuffle the rows every epoch (shared permutation)")
    g.add_argument("--seed", type=integer, default=0, help="seed of the shuffle and of --init normal or torch")
    g.add_argument("--dtype", default="float64", help="float64 or float32")
    g.add_argument("--device", help="cpu, gpu or tpu: the JAX platform (torch runs on cuda for gpu, else on the "
                   "cpu; NumPy on the cpu) (default: JAX's default platform)")  # fmt: skip
    if not sweep:
        g.add_argument("--record-every", type=integer, default=1, metavar="K",
                       help="keep the parameters every K steps and after the last (long runs: memory grows with "
                       "the kept rows, not the steps; compared at the kept rows)")  # fmt: skip
        g.add_argument("--max-memory", type=real, default=RECORD_BUDGET_GIB, metavar="GIB",
                       help="refuse, before running, runs whose kept parameters would exceed GIB gibibytes")
    g.add_argument("--init", help="zeros, normal, torch (nn.Linear's and nn.Conv2d's default), flax (lecun_normal, zero bias), "
                   "keras (glorot_uniform, zero bias) or constant (default: zeros; torch for the mlp and the cnn, whose zeros "
                   "cannot break symmetry)")  # fmt: skip
    g.add_argument("--init-from", metavar="PATH.npz", help="initial parameters, arrays named as the model's parameters")
    g.add_argument("--init-scale", type=real,
                   help="std of --init normal, or the value of every parameter with --init constant")


def _output_flags(p: argparse.ArgumentParser, sweep: bool) -> None:
    """What is written: JSON, report, CSV, figure, the table's format."""
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help="write the full comparison as JSON ('-': to stdout, the table to stderr)")
    if not sweep:
        g.add_argument("--json-params", action="store_true", help="put every kept step's parameters in the JSON")
        g.add_argument("--report", metavar="PATH.md|.html", help="a self-contained report: the spec, the update of each run, "
                       "the table, verdicts and causes, the figure embedded, equivalent torch and optax code")  # fmt: skip
        g.add_argument("--csv", metavar="PATH", help="every kept step of every run: run, step, loss, each parameter entry")
    g.add_argument("--plot", metavar="PATH.png|.svg", help="draw training loss, training and test accuracy per epoch and "
                   "each run's deviation from the reference per step")  # fmt: skip
    if not sweep:
        g.add_argument("--reference", choices=("optimum",), help="'optimum': each run's distance to the optimum of its own "
                       "convention's objective (SciPy L-BFGS to |grad| 1e-10)")  # fmt: skip
    g.add_argument("--force", action="store_true", help="overwrite an existing --json, --plot, --report or --csv file")
    if not sweep:
        g.add_argument("--format", default="table", choices=("table", "markdown", "csv"),
                       help="the runs as a table (100 columns), a Markdown table or CSV")  # fmt: skip
        g.add_argument("--quiet", action="store_true", help="no progress bar (it shows on a terminal once the runs take over a second)")
    if not sweep:
        g.add_argument("--list", action="store_true", help="list the scenarios of comparisons/ (run one: xreg compare "
                       "comparisons/NAME.toml [flags that override the file's])")  # fmt: skip
        g.add_argument("--explain", metavar="OPTIMIZER",
                       help="print the update equations, exact optax chain and naive port of OPTIMIZER, then exit")


def build_parser(prog: str = "xreg compare", sweep: bool = False, description: str = DESCRIPTION,
                 epilog: str = ("Exit status: 0 every pair matches or parts by round-off only, 1 a rule differs (or a run diverged "
                                "or failed), 2 bad input, 3 an output could not be written, 130 interrupted."),
                 ) -> argparse.ArgumentParser:  # fmt: skip
    """The experiment's flags (shared with ``xreg sweep``, which passes ``sweep=True``: one convention,
    --backend names the verifying backends, no --naive/--explain)."""
    p = Parser(prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter)
    _data_flags(p, sweep)
    _model_flags(p, sweep)
    _regularization_flags(p, sweep)
    _run_flags(p, sweep)
    _output_flags(p, sweep)
    return p


def _decoupled_flag(args: argparse.Namespace, flag: Any) -> str:
    """``--opt decoupled_weight_decay=true|false`` as the convention it names, where the class takes it."""
    opt = optimizers.get(args.optimizer)
    if not opt.decoupled_flag:
        raise XregInputError(f"{opt.source} has no decoupled_weight_decay option "
                             "(--convention decoupled decays any optimizer decoupled).")  # fmt: skip
    if not isinstance(flag, bool):
        raise XregInputError(f"--opt decoupled_weight_decay takes true or false; got {flag!r}.")
    chosen = "decoupled" if flag else "coupled"
    if args.convention and [conventions.canonical(c) for c in args.convention] != [chosen]:
        raise XregInputError(f"--opt decoupled_weight_decay={str(flag).lower()} is --convention {chosen}; "
                             f"the --convention given is {', '.join(args.convention)}.")  # fmt: skip
    return chosen


def _check_start(args: argparse.Namespace) -> None:
    """The start flags that would be read past: two starts named, or a scale no family reads."""
    if args.init is not None and args.init_from is not None:
        raise XregInputError(f"--init {args.init} and --init-from {args.init_from} both name the start: give one.")
    family = args.init if args.init is not None else (models.MODELS[args.model].default_init if args.model in models.MODELS else None)
    if args.init_scale is not None and (args.init_from is not None or family not in ("normal", "constant", None)):
        what = "--init-from" if args.init_from else f"--init {family}" + ("" if args.init else f" (the {args.model} model's default)")
        raise XregInputError(f"--init-scale is read by --init normal and constant only, not by {what}.")


def _training_step(args: argparse.Namespace) -> dict:
    """The spec's accumulation, resume, loss and clipping fields from their flags, and every naive code list
    (``--naive-layer`` fills naive_layers; a parser without the naive flags, sweep's, gives none)."""
    return dict(
        accumulate=args.accumulate,
        resume_at=args.resume_at,
        loss_reduction=args.loss_reduction,
        class_weight=_class_weight(args.class_weight),
        label_smoothing=0.0 if args.label_smoothing is None else args.label_smoothing,
        clip_norm=args.clip_norm,
        clip_norm_type=2.0 if args.clip_norm_type is None else args.clip_norm_type,
        clip_per_parameter=args.clip_per_parameter,
        clip_error_if_nonfinite=args.clip_error_if_nonfinite,
        clip_value=args.clip_value,
        **{f: tuple(getattr(args, "naive_layer" if f == "naive_layers" else f, None) or ()) for f in spec.NAIVE_FIELDS},
    )


def _class_weight(text: str | None) -> tuple[float, ...] | None:
    """--class-weight W0,W1,...: numbers in ASCII digits, one per class."""
    if text is None:
        return None
    from xreg.core.checks import is_number

    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 2 or not all(is_number(p) for p in parts):
        raise XregInputError(f"--class-weight takes one number per class, W0,W1,... (at least 2); got {text!r}.")
    return tuple(float(p) for p in parts)


def _optimizer_options(args: argparse.Namespace) -> dict:
    """``--opt KEY=VALUE`` with ``--momentum`` and ``--dampening`` (which must agree with it)."""
    options = pairs(args.opt, "--opt")
    for name in ("momentum", "dampening"):
        if getattr(args, name) is not None:
            if name in options and options[name] != getattr(args, name):
                raise XregInputError(f"--{name} {getattr(args, name)} and --opt {name}={options[name]} disagree; give one.")
            options[name] = getattr(args, name)
    return options


def spec_from_args(args: argparse.Namespace) -> spec.ExperimentSpec:
    _check_start(args)
    options = _optimizer_options(args)
    if args.map_labels and args.data is None:
        raise XregInputError("--map-labels maps the labels of a --data file or dataset; the embedded data is already 0/1.")
    conventions_given = args.convention or [optimizers.get(args.optimizer).default_convention]
    known = [c for c in conventions_given if conventions.canonical(c) in conventions.CONVENTIONS]
    if args.decoupled_scale in spec.DECOUPLED_SCALES[1:] and not any(conventions.get(c).schedule_coefficient for c in known):
        raise XregInputError(f"--decoupled-scale {args.decoupled_scale} is read by the decoupled convention only; "
                             f"the runs use {', '.join(conventions_given)}.")  # fmt: skip
    if "decoupled_weight_decay" in options:  # torch's own spelling of --convention decoupled
        args.convention = [_decoupled_flag(args, options.pop("decoupled_weight_decay"))]
    if args.nesterov:
        options["nesterov"] = True
    if args.muon_others is not None:
        if not optimizers.get(args.optimizer).two_d_only:
            raise XregInputError(f"--muon-others names the class of Muon's other parameters; the optimizer is {args.optimizer!r}.")
        options["others"] = args.muon_others
    no_decay = list(args.no_decay or []) + (["bias"] if args.no_decay_bias else [])
    group_decay = pairs(args.group_decay, "--group-decay")
    for pattern, v in group_decay.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise XregInputError(f"--group-decay takes PATTERN=NUMBER; got {pattern}={v!r}.")
    schedule, schedule_options = schedule_of(args.schedule, args.schedule_opt, "--schedule-opt")
    return spec.ExperimentSpec(
        model=args.model,
        hidden=args.hidden,
        activation=args.activation,
        norm=args.norm,
        dropout=0.0 if args.dropout is None else args.dropout,
        **{k: getattr(args, k) for k in models.CONV_OPTIONS},
        optimizer=args.optimizer,
        lr=args.lr,
        lam=args.lam,
        convention=(args.convention or [optimizers.get(args.optimizer).default_convention])[0],
        options=options,
        no_decay=tuple(dict.fromkeys(no_decay)),
        group_decay=tuple(group_decay.items()),
        decoupled_scale=args.decoupled_scale,
        epochs=args.epochs,
        batch_size=args.batch_size,
        shuffle=args.shuffle,
        seed=args.seed,
        dtype=args.dtype,
        init=args.init,
        init_from=args.init_from,
        init_scale=0.1 if args.init_scale is None else args.init_scale,
        schedule=schedule,
        schedule_options=schedule_options,
        schedule_every=args.schedule_every,
        **_training_step(args),
        record_every=getattr(args, "record_every", 1),
        device=args.device,
    )


def load_data(args: argparse.Namespace, model: str) -> spec.Dataset:
    return data.load(
        args.data,
        args.target,
        model=model,
        test_fraction=args.test_fraction,
        map_labels=args.map_labels,
        max_features=None if args.allow_many_features else data.MAX_FEATURES,
        delimiter=args.delimiter,
        drop=tuple(args.drop or ()),
        drop_missing=getattr(args, "drop_missing", False),
        standardize=args.standardize,
    )


def _check_output_flags(args: argparse.Namespace) -> None:
    """The output paths and their formats, before any training (an existing file, a suffix xreg cannot write)."""
    from xreg.io.files import check_outputs

    if args.report and not args.report.lower().endswith((".md", ".html", ".htm")):
        raise XregInputError(f"--report takes PATH.md or PATH.html; got {args.report!r}.")
    check_outputs({"--json": args.json, "--plot": args.plot, "--report": args.report, "--csv": args.csv},
                  inputs=(args.data, args.init_from), force=args.force)  # before training, not after
    if args.plot:
        from xreg.report.plots import FORMATS

        if os.path.splitext(args.plot)[1].lower() not in FORMATS:
            raise XregInputError(f"--plot takes PATH.png or PATH.svg (the format is the suffix); got {args.plot!r}.")


def _printed(comparison, args: argparse.Namespace, ds, sizes, say) -> dict:
    """The table (with its headline) and, with --reference optimum, each run's distance to it; the JSON document."""
    from xreg.core.structure import architecture
    from xreg.report import jsondoc, table

    base, arch = comparison.spec, architecture(comparison.spec, ds)
    if args.format != "csv":  # csv: the rows alone
        say(f"data: {ds.name} ({ds.n_train} train / {ds.X_test.shape[0]} test rows, {ds.n_features} features); "
            f"{base.model} [{arch.describe()}] + {base.optimizer}, lr={base.lr:g}, lam={base.lam:g}, {base.epochs} epochs, "
            f"batches of {list(sorted(set(sizes), reverse=True))} rows, {base.dtype}")
    say(table.table(comparison, args.format))
    doc = jsondoc.to_json(comparison, params=args.json_params)
    if getattr(args, "reference", None) == "optimum":
        from xreg.analysis.optimum import reference_optima

        refs = reference_optima(comparison)
        say("distance to the optimum of each run's own objective (max |w - w*|):")
        for r in refs:
            say(f"  {r.label:<24} " + (f"{r.distance:.3e}  {r.note}" if r.distance is not None else f"-  {r.note}"))
        doc["reference_optimum"] = [r.to_json() for r in refs]
    return doc


def _outputs(comparison, args: argparse.Namespace, doc: dict) -> list[tuple[str, str | bytes]]:
    """Every file asked for, rendered first (written all together or not at all); --json - goes to stdout now."""
    outputs: list[tuple[str, str | bytes]] = []
    if args.json:
        import json

        text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            outputs.append((args.json, text))
    if args.plot:
        from xreg.report import plots

        outputs.append((args.plot, plots.render_for(comparison, args.plot)))
    if args.report or args.csv:
        from xreg.report import document

        if args.report:
            outputs.append((args.report, document.report(comparison, os.path.splitext(args.report)[1].lower())))
        if args.csv:
            outputs.append((args.csv, document.trajectories_csv(comparison)))
    return outputs


def run(argv: Sequence[str] | None = None, prog: str = "xreg compare") -> int:
    from xreg.analysis import runs  # heavy imports after argument parsing
    from xreg.core.plan import batch_sizes

    argv = list(argv if argv is not None else sys.argv[1:])
    if "--list" in argv:
        if argv != ["--list"]:
            raise XregInputError("--list lists the shipped scenarios and takes no other flag; got " + " ".join(argv) + ".")
        return list_scenarios()
    scenario = None
    if argv and not argv[0].startswith("-"):
        from xreg.io import scenario as scenario_io

        scenario = scenario_io.load(scenario_io.find(argv[0]))
        argv = scenario_io.argv(scenario, argv[1:])
    args = build_parser(prog).parse_args(argv)
    if scenario is not None:  # beside --json -, stdout holds the JSON alone
        print(f"scenario {scenario.name}: {scenario.title}", file=sys.stderr if args.json == "-" else sys.stdout)
    if args.explain:
        from xreg.cli import explain

        spec_from_args(args)  # the values given beside --explain are checked too
        print(explain.explain(args.explain))
        return EXIT_MATCH
    base = spec_from_args(args)
    ds = load_data(args, base.model)
    runs.check(base, ds)
    sizes = batch_sizes(base, ds.n_train)
    naive = args.naive or any(getattr(base, f) for f in spec.NAIVE_FIELDS)  # a named naive difference implies the port
    requests = runs.requests_from(base, sizes, ds, args.backend, args.convention, naive)
    if scenario is not None:
        _check_expected_pairs(scenario, runs.labels_of(base, requests))
    _check_output_flags(args)
    from xreg.report.progress import Bars

    bars = Bars(enabled=False if args.quiet else None)
    try:
        comparison = runs.run_all(base, ds, requests, on_run=bars.on_run, max_memory_gib=args.max_memory)
    finally:
        bars.close()
    say = print if args.json != "-" else (lambda *a, **k: print(*a, **k, file=sys.stderr))  # stdout: the JSON alone
    outputs = _outputs(comparison, args, _printed(comparison, args, ds, sizes, say))
    if outputs:
        from xreg.io.files import write_all

        write_all(outputs, force=args.force)
        for path, _ in outputs:
            say(f"wrote {path}")
    if scenario is not None:
        return _expectations(scenario, comparison, say)
    return EXIT_MATCH if comparison.rules_match else EXIT_MISMATCH


def list_scenarios() -> int:
    from xreg.io import scenario as scenario_io

    paths = scenario_io.shipped()
    if not paths:
        print(f"no scenarios found (looked in {scenario_io.ROOT})")
        return EXIT_MATCH
    width = max(len(p.stem) for p in paths)
    for path in paths:
        sc = scenario_io.load(path)
        print(f"{sc.name:<{width}}  {sc.summary}")
    print(f"\nrun one: xreg compare {scenario_io.ROOT.name}/NAME.toml [flags that override the file's]")
    return EXIT_MATCH


def _check_expected_pairs(scenario, labels: list[str]) -> None:
    """Every pair a scenario expects is a pair of its runs (before anything runs: input, exit 2)."""
    for e in scenario.expect:
        if e.a not in labels or e.b not in labels:
            raise XregInputError(f"scenario {scenario.name}: [[expect]] names the pair {e.a} vs {e.b}, but its runs are "
                                 + ", ".join(labels) + ".")  # fmt: skip


def _expectations(scenario, comparison, say=print) -> int:
    """Print each expected verdict beside the one found; exit 0 when every one holds."""
    from xreg.analysis import triage
    say("expected verdicts:")
    ok = True
    status = {o.label: o.status for o in comparison.outcomes}  # every expected run is one (checked before the runs)
    for e in scenario.expect:
        try:
            got = comparison.pair(e.a, e.b).verdict
        except KeyError:  # a run of the pair did not finish (unavailable, skipped, failed)
            got = "; ".join(f"{x}: {status[x]}" for x in (e.a, e.b) if status[x] != "ok") or "not compared"
        # a match of torch's bfloat16 kernel and xreg's emulation, where this CPU's kernel is not the emulated one
        kernel = e.verdict == "match" and got == triage.ROUND_OFF_KERNEL
        held = got == e.verdict or kernel
        ok &= held
        found = f" ({got} on this CPU)" if kernel else "" if held else f" (found: {got})"
        say(f"  {'ok  ' if held else 'FAIL'} {e.a} vs {e.b}: {e.verdict}" + found + f". {e.why}")
        floor = next((p.floor for p in comparison.pairs if {p.a, p.b} == {e.a, e.b}), None)
        if floor is not None:
            say(f"       gap {comparison.pair(e.a, e.b).max_abs_diff:.2e}; round-off floor: {floor.describe()}")
    return EXIT_MATCH if ok else EXIT_MISMATCH


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xreg.compare``: the compare subcommand on its own."""
    from xreg.cli.common import guarded

    return guarded(lambda: run(argv, prog="python -m xreg.compare"))
