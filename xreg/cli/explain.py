"""``xreg explain OPTIMIZER`` (and ``xreg compare --explain OPTIMIZER``): the update equations, the
recipe, the exact optax chain and the naive port of one torch optimizer, with what differs. The chains
are printed from the same link objects the JAX backend runs, so the text cannot drift from the code.
"""

from __future__ import annotations

from typing import Sequence

from xreg import models
from xreg.core.checks import XregInputError
from xreg.cli.common import EXIT_MATCH, Parser, pairs, real
from xreg.core import recipe
from xreg.core.spec import ExperimentSpec
from xreg.core.structure import hparams, structure
from xreg import optimizers
from xreg.semantics import conventions

EXAMPLE_LAM = 0.01
EXAMPLE_ARCH = models.architecture("logistic", 4, 2)
EXAMPLE_ROWS = 8  # rows of the example: one full batch an epoch


def _spec(name: str, lr: float | None = None, lam: float | None = None, options: dict | None = None) -> ExperimentSpec:
    opt = optimizers.get(name)
    return ExperimentSpec(optimizer=name, lr=opt.default_lr if lr is None else lr, lam=EXAMPLE_LAM if lam is None else lam,
                          convention=opt.default_convention, options=options or {})  # fmt: skip


def chains(name: str, lr: float | None = None, lam: float | None = None, options: dict | None = None) -> tuple[str, str, str | None]:
    """(exact chain, naive chain, cause of the naive drift or None) for torch's defaults (or the values given) + weight_decay."""
    from xreg.backends.jax import run as jax_run

    spec = _spec(name, lr, lam, options)
    s, hp = structure(spec, EXAMPLE_ARCH, EXAMPLE_ROWS), hparams(spec)
    naive_spec = spec.replace(port="naive", convention=optimizers.naive_convention(name, spec.convention))
    naive = structure(naive_spec, EXAMPLE_ARCH, EXAMPLE_ROWS)
    cause = optimizers.naive_cause(name, spec.options, naive_spec.convention, s.decays_everything)
    return jax_run.chain_text(s, hp), jax_run.chain_text(naive, hp), cause


def explain(name: str, lr: float | None = None, lam: float | None = None, options: dict | None = None) -> str:
    opt = optimizers.get(name)
    spec = _spec(name, lr, lam, options)
    resolved = opt.resolve(spec.options)
    defaults = ", ".join(f"{k}={v}" for k, v in resolved.items() if k not in opt.xreg_only)
    exact, naive, cause = chains(name, lr, lam, options)
    wd = "coupled: g <- g + lam*w before the step (after clip_grad_norm_)" if conventions.get(opt.native_convention).coupled \
        else "decoupled: w <- w - lr*lam*w before the step"
    if not opt.takes_weight_decay:
        wd = "none in torch: decoupled, w <- w - lr*lam*w before each step by a line of the loop (or L2 in the loss)"
    wd_arg = f"weight_decay={'lam' if lam is None else f'{lam:g}'}, " if opt.takes_weight_decay else ""
    ported = optimizers.naive_convention(name, spec.convention)  # the convention the naive port is shown for
    lines = [
        f"{opt.source}({'learning_rate' if opt.framework == 'keras' else 'lr'}={spec.lr:g}, {wd_arg}{defaults})"
        + (f" on the 2-D parameters; torch.optim.{optimizers.get(resolved['others']).torch_class}(lr={spec.lr:g}, weight_decay="
           f"{'lam' if lam is None else f'{lam:g}'}) on the rest (--muon-others)" if opt.two_d_only else ""),
        f"  weight decay   {wd}",
        f"  update         {opt.formula}",
        f"  recipe         {recipe.text(recipe.build(structure(spec, EXAMPLE_ARCH, EXAMPLE_ROWS)))}",
        f"exact optax (lam={spec.lam:g}):",
        f"  {exact}",
        "naive optax port" + ("" if ported == spec.convention else f" (of convention '{ported}')") + ":",
        f"  {naive}",
        f"  differs: {cause}" if cause else "  differs: nothing, the stock alias is exact here",
    ]
    if opt.decoupled_flag:
        lines.append(f"  decoupled_weight_decay=True: use convention 'decoupled' (as torch.optim.{opt.torch_class} with it)")
    return "\n".join(lines)


def run(argv: Sequence[str]) -> int:
    p = Parser(prog="xreg explain", description="Print how torch, optax and the naive optax port apply weight "
               "decay for one optimizer, from the code that runs them; or ('layers') where torch, flax and Keras "
               "layers differ by default; or ('schedules') torch's lr schedulers against optax's.")  # fmt: skip
    p.add_argument("optimizer", help="one of: " + ", ".join(optimizers.OPTIMIZERS) + "; or 'layers': the table of layer "
                   "conventions (batch and layer norm, GELU, conv padding and layout, flatten order, init); 'schedules': torch's lr "
                   "schedulers, their exact optax form and the naive port's difference")  # fmt: skip
    p.add_argument("--lr", type=real, help="your learning rate (default: torch's)")
    p.add_argument("--weight-decay", type=real, help=f"your weight_decay (default: {EXAMPLE_LAM} as an example)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="your value of a torch option (repeatable)")
    args = p.parse_args(list(argv))
    if args.optimizer in ("layers", "schedules"):
        from xreg import schedules
        from xreg.semantics import layers

        given = [f for f, v in (("--lr", args.lr), ("--weight-decay", args.weight_decay), ("--option", args.option)) if v is not None]
        if given:
            raise XregInputError(f"{given[0]} is for an optimizer; 'xreg explain {args.optimizer}' takes no options.")

        print(layers.table_text() if args.optimizer == "layers" else schedules.table_text())
        return EXIT_MATCH
    if optimizers.by_name(args.optimizer) is None:
        raise XregInputError(f"xreg explain takes an optimizer ({', '.join(optimizers.OPTIMIZERS)}), 'layers' or 'schedules'; "
                             f"got {args.optimizer!r}.")  # fmt: skip
    print(explain(optimizers.by_name(args.optimizer), args.lr, args.weight_decay, pairs(args.option, "--option")))
    return EXIT_MATCH
