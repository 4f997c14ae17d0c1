"""``xreg explain OPTIMIZER`` (and ``xreg compare --explain OPTIMIZER``): the update equations, the
recipe, the exact optax chain and the naive port of one torch optimizer, with what differs. The chains
are printed from the same link objects the JAX backend runs, so the text cannot drift from the code.
"""

from __future__ import annotations

from typing import Sequence

from xreg import models
from xreg.cli.common import EXIT_MATCH, Parser
from xreg.core import recipe
from xreg.core.spec import ExperimentSpec
from xreg.core.structure import hparams, structure
from xreg.semantics import conventions, optimizers

EXAMPLE_LAM = 0.01
EXAMPLE_ARCH = models.architecture("logistic", 4, 2)


def _spec(name: str) -> ExperimentSpec:
    opt = optimizers.get(name)
    return ExperimentSpec(optimizer=name, lr=opt.default_lr, lam=EXAMPLE_LAM, convention=opt.native_convention)


def chains(name: str) -> tuple[str, str, str | None]:
    """(exact chain, naive chain, cause of the naive drift or None) for torch's defaults + weight_decay."""
    from xreg.backends.jax import run as jax_run

    spec = _spec(name)
    s, hp = structure(spec, EXAMPLE_ARCH), hparams(spec)
    naive = structure(spec.replace(port="naive"), EXAMPLE_ARCH)
    cause = optimizers.naive_cause(name, spec.options, spec.convention, s.decays_everything)
    return jax_run.chain_text(s, hp), jax_run.chain_text(naive, hp), cause


def explain(name: str) -> str:
    opt = optimizers.get(name)
    spec = _spec(name)
    defaults = ", ".join(f"{k}={v}" for k, v in opt.defaults.items())
    exact, naive, cause = chains(name)
    wd = "coupled: g <- g + lam*w before the step (after clip_grad_norm_)" if conventions.get(opt.native_convention).coupled \
        else "decoupled: w <- w - lr*lam*w before the step"
    lines = [
        f"torch.optim.{opt.torch_class}(lr={opt.default_lr:g}, weight_decay=lam, {defaults})",
        f"  weight decay   {wd}",
        f"  update         {opt.formula}",
        f"  recipe         {recipe.text(recipe.build(structure(spec, EXAMPLE_ARCH)))}",
        f"exact optax (lam={spec.lam:g}):",
        f"  {exact}",
        "naive optax port:",
        f"  {naive}",
        f"  differs: {cause}" if cause else "  differs: nothing, the stock alias is exact here",
    ]
    if opt.decoupled_flag:
        lines.append(f"  decoupled_weight_decay=True: use convention 'decoupled' (as torch.optim.{opt.torch_class} with it)")
    return "\n".join(lines)


def run(argv: Sequence[str]) -> int:
    p = Parser(prog="xreg explain", description="Print how torch, optax and the naive optax port apply weight "
               "decay for one optimizer, from the code that runs them.")  # fmt: skip
    p.add_argument("optimizer", help="one of: " + ", ".join(optimizers.OPTIMIZERS))
    args = p.parse_args(list(argv))
    print(explain(args.optimizer))
    return EXIT_MATCH
