"""``python -m xreg.compare --explain OPTIMIZER``: the update equations, the exact optax chain and the
naive port of one torch optimizer, with what differs. The chains are printed from the same builders
the JAX backend runs, so the text cannot drift from the code.
"""

from __future__ import annotations

from xreg import optimizers
from xreg.plan import TrainingPlan
from xreg.spec import ExperimentSpec

EXAMPLE_LAM = 0.01


def _spec(name: str) -> ExperimentSpec:
    opt = optimizers.get(name)
    return ExperimentSpec(optimizer=name, lr=opt.default_lr, lam=EXAMPLE_LAM, convention=opt.native_convention)


def chains(name: str) -> tuple[str, str, str | None]:
    """(exact chain, naive chain, cause of the naive drift or None) for torch's defaults + weight_decay."""
    import numpy as np

    from xreg.backends import jax_backend, naive_ports

    spec = _spec(name)
    plan = TrainingPlan(np.zeros(1), np.zeros(1), np.zeros((1, 1), dtype=np.int64), (1,))
    exact = jax_backend.chain_text(jax_backend.build_chain(spec, plan))
    naive = jax_backend.build_chain(spec.replace(port="naive"), plan)[0].text
    return exact, naive, naive_ports.cause(spec)


def explain(name: str) -> str:
    opt = optimizers.get(name)
    spec = _spec(name)
    defaults = ", ".join(f"{k}={v}" for k, v in opt.defaults.items())
    exact, naive, cause = chains(name)
    wd = "decoupled: w <- w - lr*lam*w before the step" if opt.native_convention == "decoupled" else (
        "coupled: g <- g + lam*w before the step (after clip_grad_norm_)")
    lines = [
        f"torch.optim.{opt.torch_class}(lr={opt.default_lr:g}, weight_decay=lam, {defaults})",
        f"  weight decay   {wd}",
        f"  update         {opt.formula}",
        f"exact optax (lam={spec.lam:g}):",
        f"  {exact}",
        "naive optax port:",
        f"  {naive}",
        f"  differs: {cause}" if cause else "  differs: nothing, the stock alias is exact here",
    ]
    if name in ("adam", "nadam", "radam"):
        lines.append(f"  decoupled_weight_decay=True: use convention 'decoupled' (as torch.optim.{opt.torch_class} with it)")
    return "\n".join(lines)
