"""Ground truth for a run's end point: the optimum of its convention's regularized objective.

A convention that adds ``c*w`` to the mean data gradient (torch, l2-loss, scratch with one batch size,
decoupled decay on momentum-free SGD) has fixed points where ``grad mean(loss) + c*w = 0``: the
minimiser of ``mean(loss) + sum_groups c/2*||w||^2`` over the training rows. That optimum is found
here by SciPy's L-BFGS on the exact objective (loss and gradient from :func:`xreg.models.backward`) to
a gradient norm of 1e-10, and ``compare --reference optimum`` reports each run's distance to its own
convention's optimum. Decoupled decay with momentum or an adaptive optimizer minimises no such
objective; the MLP's objective is not convex: both are said instead of a number.

scikit-learn's ``LogisticRegression(C)`` (lbfgs) minimises ``C*sum(loss) + 1/2*||w||^2`` with the
intercept free: the optimum of ``c = 1/(C*n)`` with the bias not decayed; liblinear with
``intercept_scaling=1`` penalises the intercept as a weight: the same with the bias decayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from xreg import models
from xreg.core.spec import Dataset, ExperimentSpec
from xreg.core.structure import group_strengths, split
from xreg import optimizers
from xreg.semantics import conventions

GRAD_NORM = 1e-10


@dataclass(frozen=True)
class Optimum:
    params: dict[str, np.ndarray]
    grad_norm: float
    coefficients: dict[str, float]  # c per parameter


def coefficients(spec: ExperimentSpec, data: Dataset, batch_sizes: tuple[int, ...]) -> dict[str, float] | str:
    """The ``c`` each parameter's decay adds to the mean gradient at a fixed point, or why there is none."""
    if not models.get(spec.model).convex:
        return f"the {spec.model} objective is not convex: no single optimum to measure against"
    s, hp = split(spec, data)
    conv = conventions.get(spec.convention)
    opt = optimizers.get(spec.optimizer)
    if conv.enters == conventions.DIRECTION and not opt.momentum_free(spec.options):
        return f"decoupled decay with {spec.optimizer} minimises no L2-regularized objective"
    if conv.coefficient == "lam/m" and len(set(batch_sizes)) > 1:
        return f"scratch decay lam/m with batch sizes {sorted(set(batch_sizes))}: no single objective"
    m = batch_sizes[0] if batch_sizes else data.n_train
    out = {n: 0.0 for n in s.arch.names}
    for names, lam in group_strengths(s, hp):
        c = (conventions.decoupled_rate(spec.convention, lam, spec.lr, spec.decoupled_scale) if conv.enters == conventions.DIRECTION
             else conventions.gradient_coefficient(spec.convention, lam, m))  # fmt: skip
        for n in names:
            out[n] = float(c)
    return out


def optimum(arch: models.Architecture, X: np.ndarray, y: np.ndarray, coef: Mapping[str, float],
            start: Mapping[str, np.ndarray] | None = None) -> Optimum:  # fmt: skip
    """The minimiser of ``mean(loss) + sum_p coef[p]/2*||p||^2`` by SciPy L-BFGS to ``GRAD_NORM``."""
    from scipy.optimize import minimize

    shapes = arch.shapes
    sizes = [math.prod(s) for s in shapes.values()]
    cut = np.cumsum([0, *sizes])
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    cvec = np.concatenate([np.full(k, coef[n]) for n, k in zip(shapes, sizes)])

    def tree(theta):
        return {n: theta[cut[i] : cut[i + 1]].reshape(s) for i, (n, s) in enumerate(shapes.items())}

    def fg(theta):
        loss, g = models.backward(arch, tree(theta), X, y, np)
        gv = np.concatenate([np.ravel(g[n]) for n in shapes]) + cvec * theta
        return float(loss) + 0.5 * float(np.sum(cvec * theta * theta)), gv

    theta = np.zeros(cut[-1]) if start is None else np.concatenate([np.ravel(start[n]) for n in shapes]).astype(np.float64)
    for _ in range(4):  # L-BFGS restarts until the gradient norm is reached (ftol 0: only the gradient stops it)
        res = minimize(fg, theta, jac=True, method="L-BFGS-B", options={"gtol": 1e-14, "ftol": 0.0, "maxiter": 20_000, "maxcor": 30})
        theta = res.x
        if np.linalg.norm(fg(theta)[1]) <= GRAD_NORM:
            break
    g = fg(theta)[1]
    for _ in range(5):  # Newton on a finite-difference Hessian where L-BFGS stalls (weak decay: ill-conditioned)
        if np.linalg.norm(g) <= GRAD_NORM or theta.size > 2000:
            break
        h = 1e-6 * max(1.0, float(np.max(np.abs(theta))))
        H = np.stack([(fg(theta + h * e)[1] - fg(theta - h * e)[1]) / (2 * h) for e in np.eye(theta.size)])
        try:
            step = np.linalg.solve(0.5 * (H + H.T), -g)
        except np.linalg.LinAlgError:
            break
        new = theta + step
        g_new = fg(new)[1]
        if not np.linalg.norm(g_new) < np.linalg.norm(g):
            break
        theta, g = new, g_new
    return Optimum(tree(theta.copy()), float(np.linalg.norm(g)), dict(coef))


@dataclass(frozen=True)
class Reference:
    label: str
    distance: float | None  # max |theta_final - theta*| over every parameter
    note: str

    def to_json(self) -> dict:
        return {"run": self.label, "distance": self.distance, "note": self.note}


def reference_optima(comparison) -> list[Reference]:
    """Each finished run's distance to the optimum of its own convention's objective."""
    from xreg.core.structure import architecture

    out = []
    cache: dict[tuple, Optimum] = {}
    for o in comparison.outcomes:
        if o.trajectory is None:
            out.append(Reference(o.label, None, "no run"))
            continue
        coef = coefficients(o.spec, comparison.data, comparison.batch_sizes)
        if isinstance(coef, str):
            out.append(Reference(o.label, None, coef))
            continue
        arch = architecture(o.spec, comparison.data)
        key = (arch, tuple(sorted(coef.items())))
        if key not in cache:
            cache[key] = optimum(arch, comparison.data.X_train, comparison.data.y_train, coef)
        opt = cache[key]
        final = o.trajectory.final_params
        d = max(float(np.max(np.abs(np.asarray(final[n], float) - opt.params[n]))) for n in opt.params)
        shown = ", ".join(f"{n} {c:.4g}" for n, c in coef.items())
        out.append(Reference(o.label, d, f"optimum of mean(loss) + c/2*||w||^2 with c: {shown} (L-BFGS, |grad| {opt.grad_norm:.1e})"))
    return out
