"""Which regularization convention does the user's own update follow? (``xreg diagnose --update`` and
``--trajectory``)

The user's run is a trajectory of a linear or logistic model's parameters ``beta = [bias, w]`` (bias
first, as the classic scratch code keeps it) on known data with a known ``lr`` and ``lam``. Every
convention of plain gradient descent is ``beta <- beta - lr*(s*g + c*mask*beta)``, with ``g`` the mean
data gradient (computed here by :func:`xreg.models.backward` at the recorded parameters), ``s`` 1 (a mean
loss) or ``n`` (a sum loss), ``mask`` the decayed parameters (the bias or not) and ``c`` the decay
coefficient, fitted freely by least squares over every step. Conventions with the same arithmetic fit
equally well; they differ in what ``c`` means in the user's ``lam`` (``c = lam``, ``lam/n``, ``2*lam``),
so the ranking is: reproduces to round-off first, then the smallest residual, then the ``lam`` the fit
implies closest to the user's. The best fit is then re-run in real torch (``torch.optim.SGD``) from the
same start on the same data and compared with the tolerance model: nothing is claimed unverified.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from xreg import models
from xreg.analysis.agreement import TOLERANCE_FACTOR, eps, tolerance
from xreg.core.checks import XregInputError
from xreg.optimizers import sgd

PLAIN = sgd.OPTIMIZERS[0]  # the plain step w <- w - lr*(g + c*w) every fit here is of


@dataclass(frozen=True)
class Form:
    name: str
    update: str
    sum_loss: bool  # s = n
    lam_of: Callable[[float, int], float]  # the user's lam this convention means by a coefficient c on n rows
    fix: str  # the one-line change that makes the user's code equal torch.optim.SGD(weight_decay=lam)


FORMS: tuple[Form, ...] = (
    Form("coupled", "g <- g + lam*w (torch.optim's weight_decay)", False, lambda c, n: c, "none: it is torch's rule"),
    Form("l2-loss", "min mean(loss) + lam/2*||w||^2", False, lambda c, n: c, "none: its gradient is torch's rule"),
    Form("no-half", "min mean(loss) + lam*||w||^2 (no 1/2: gradient 2*lam*w)", False, lambda c, n: c / 2,
         "penalty = lam/2*||w||^2 (or grad += lam*w), not lam*||w||^2"),
    Form("scratch", "g <- (sum_i grad_i + lam*w)/n", False, lambda c, n: c * n,
         "grad = data_grad/n + lam*beta (divide only the data term by n)"),
    Form("decoupled", "w <- w - lr*lam*w, then w <- w - lr*g", False, lambda c, n: c, "none: for plain SGD it is torch's rule"),
    Form("sum-loss", "min sum(loss) + lam/2*||w||^2", True, lambda c, n: c,
         "loss = mean over the rows (divide the data term by n), penalty lam/2*||w||^2"),
    Form("sum-loss-no-half", "min sum(loss) + lam*||w||^2", True, lambda c, n: c / 2,
         "loss = mean over the rows, penalty lam/2*||w||^2"),
)  # fmt: skip


@dataclass
class FitRow:
    convention: str
    bias_decayed: bool
    coefficient: float  # c in s*g + c*w
    lam: float  # the lam it means
    residual: float  # worst step / one-step round-off
    reproduces: bool


@dataclass
class UpdateFit:
    lr: float
    lam: float
    rows: int
    steps: int
    fits: list[FitRow]
    best: FitRow | None
    runner_up: FitRow | None
    equivalent: dict[str, str] = field(default_factory=dict)
    fix: str = ""
    verified: str = ""

    def to_json(self) -> dict[str, Any]:
        row = lambda f: None if f is None else {k: getattr(f, k) for k in ("convention", "bias_decayed", "coefficient", "lam", "residual", "reproduces")}  # noqa: E731
        b = self.best
        return {
            "convention": b.convention if b else None, "bias_decayed": b.bias_decayed if b else None,
            "lam": b.lam if b else None, "coefficient": b.coefficient if b else None,
            "torch_weight_decay": self.torch_weight_decay, "equivalent": self.equivalent,
            "residual": b.residual if b else None, "runner_up": row(self.runner_up), "fix": self.fix,
            "verified": self.verified, "ranking": [f"{f.convention}{'' if f.bias_decayed else ' (bias not decayed)'}" for f in self.fits],
            "fits": [row(f) for f in self.fits], "lr": self.lr, "user_lam": self.lam, "rows": self.rows, "steps": self.steps,
        }  # fmt: skip

    @property
    def torch_weight_decay(self) -> float | None:
        b = self.best
        if b is None:
            return None
        form = next(f for f in FORMS if f.name == b.convention)
        return b.coefficient / self.rows if form.sum_loss else b.coefficient


def _grads(arch: models.Architecture, P: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty((P.shape[0] - 1, P.shape[1]))
    for t in range(P.shape[0] - 1):
        params = {"bias": P[t, :1].copy(), "weight": P[t, None, 1:].copy()}
        _, g = models.backward(arch, params, X, y, np)
        out[t] = np.concatenate([np.ravel(g["bias"]), np.ravel(g["weight"])])
    return out


def fit(P: np.ndarray, X: np.ndarray, y: np.ndarray, lr: float, lam: float, model: str = "logistic") -> UpdateFit:
    """Every form x (bias decayed or not), fitted on the trajectory ``P`` (T+1, d+1), bias first."""
    n, d = X.shape
    if P.ndim != 2 or P.shape[1] != d + 1:
        raise XregInputError(f"The run's parameters have shape {P.shape[1:]}, not ({d + 1},) = [bias, {d} weights].")
    arch = models.architecture(model, d, 2 if model == "logistic" else 1)
    G = _grads(arch, P, X, y)
    dP = np.diff(P, axis=0)
    e = eps("float64")
    tol1 = TOLERANCE_FACTOR * e * (np.max(np.abs(P[:-1]), axis=1) + np.max(np.abs(dP), axis=1)) + np.finfo(float).tiny
    rows: list[FitRow] = []
    for form in FORMS:
        s = n if form.sum_loss else 1
        r = -dP / lr - s * G  # = c * mask * P
        for bias in (True, False):
            mask = np.ones(d + 1)
            mask[0] = 1.0 if bias else 0.0
            w = P[:-1] * mask
            den = float(np.sum(w * w))
            c = float(np.sum(w * r) / den) if den > 0 else 0.0
            pred = P[:-1] - lr * (s * G + c * w)
            with np.errstate(all="ignore"):
                res = float(np.nanmax(np.max(np.abs(pred - P[1:]), axis=1) / tol1))
            res = res if math.isfinite(res) else math.inf
            rows.append(FitRow(form.name, bias, c, form.lam_of(c, n), res, res <= 16.0))

    def key(f: FitRow) -> tuple:
        closeness = abs(math.log(f.lam / lam)) if f.lam > 0 and lam > 0 else (0.0 if f.lam == lam else math.inf)
        return (not f.reproduces, 0.0 if f.reproduces else f.residual, round(closeness, 9))

    rows.sort(key=key)  # stable: the table's order breaks ties (torch before l2-loss before decoupled)
    best = rows[0] if rows[0].reproduces else None
    runner = next((f for f in rows[1:] if (f.convention, f.bias_decayed) != (rows[0].convention, rows[0].bias_decayed)), None)
    out = UpdateFit(lr, lam, n, P.shape[0] - 1, rows, best, runner)
    if best is not None:
        form = next(f for f in FORMS if f.name == best.convention)
        wd, lr_t = (best.coefficient / n, lr * n) if form.sum_loss else (best.coefficient, lr)
        groups = "model.parameters()" if best.bias_decayed else '[{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0}]'
        mask = "" if best.bias_decayed else ', mask=xreg.twins.decay_mask(("bias",))'
        out.equivalent = {
            "torch": f"torch.optim.{PLAIN.torch_class}({groups}, lr={lr_t!r}, weight_decay={wd!r})",
            "optax": f"optax.chain(optax.add_decayed_weights({wd!r}{mask}), {PLAIN.naive_alias}({lr_t!r}))",  # SGD's alias is exact
            "scratch": f"g <- (sum_i grad_i + lam*w)/n with lam = {wd * n:.10g}" + ("" if best.bias_decayed else ", bias not decayed"),
        }  # fmt: skip
        if not best.bias_decayed and not form.sum_loss:
            out.equivalent["sklearn"] = f"LogisticRegression(C={1 / (wd * n):.10g}) (the same optimum)" if model == "logistic" and wd > 0 else ""
        change = form.fix
        if not best.bias_decayed:
            change = ("" if change.startswith("none") else change + "; ") + "decay the bias too (beta[0]), as torch does by default"
        out.fix = (f"{change} -> your code equals torch.optim.{PLAIN.torch_class}(lr={lr:g}, weight_decay={lam:g}); or keep it and use "
                   f"{out.equivalent['torch']}")  # fmt: skip
    return out


def verify(result: UpdateFit, P: np.ndarray, data, model: str = "logistic") -> tuple[bool, str]:
    """Re-run the torch equivalent (xreg's torch backend: torch.optim.SGD) from P[0] on the same rows
    and compare it with the user's trajectory by the tolerance model."""
    import tempfile
    from pathlib import Path

    from xreg.backends import train
    from xreg.core.spec import ExperimentSpec

    b = result.best
    form = next(f for f in FORMS if f.name == b.convention)
    wd, lr_t = (b.coefficient / result.rows, result.lr * result.rows) if form.sum_loss else (b.coefficient, result.lr)
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "start.npz"
        np.savez(start, weight=P[0, None, 1:], bias=P[0, :1])
        spec = ExperimentSpec(model=model, optimizer=PLAIN.name, lr=lr_t, lam=max(wd, 0.0), convention="coupled", epochs=result.steps,
                              init_from=str(start), no_decay=() if b.bias_decayed else ("bias",))  # fmt: skip
        traj = train("torch", spec, data)
    Q = np.concatenate([traj.params["bias"].reshape(traj.params["bias"].shape[0], -1), traj.params["weight"].reshape(traj.params["weight"].shape[0], -1)], axis=1)
    tol = tolerance("float64", P, Q)
    gap = np.max(np.abs(P - Q), axis=1)
    ok = bool(np.all(gap <= tol))
    text = (f"re-ran torch.optim.{PLAIN.torch_class}(lr={lr_t:.6g}, weight_decay={wd:.6g}{'' if b.bias_decayed else ', bias in a weight_decay=0 group'}) "
            f"from your start for {result.steps} steps: largest gap {gap.max():.3e}, tolerance {tol[-1]:.3e}: "
            + ("it matches your code" if ok else "it does NOT match your code"))  # fmt: skip
    return ok, text


@contextlib.contextmanager
def user_code():
    """Around the user's code: its prints go to stderr (stdout is xreg's: ``--json -``), and ``sys.exit``
    in it is an input error, not xreg's exit."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except SystemExit as exc:
        raise XregInputError(f"your code called sys.exit({exc.code!r}); an update function returns the new parameters") from None


def run_update(fn: Callable, p0: np.ndarray, X: np.ndarray, y: np.ndarray, lr: float, lam: float, steps: int) -> np.ndarray:
    """The user's step ``fn(params, X, y, lr, lam) -> params`` applied ``steps`` times from ``p0``."""
    P = np.empty((steps + 1, p0.size))
    P[0] = p0
    p = p0.copy()
    for t in range(steps):
        try:
            with user_code():
                out = fn(p.copy(), X.copy(), y.copy(), lr, lam)
        except XregInputError as exc:
            raise XregInputError(f"at step {t + 1}, {exc}.") from None
        except Exception as exc:  # the user's code: any failure is reported in one line
            raise XregInputError(f"your update function raised {type(exc).__name__} at step {t + 1}: {exc}") from None
        if hasattr(out, "detach"):  # a torch tensor, maybe one that requires grad
            out = out.detach().cpu().numpy()
        if np.iscomplexobj(out):
            raise XregInputError(f"your update function returned complex numbers at step {t + 1}; the parameters are real.")
        try:
            out = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            raise XregInputError(f"your update function returned {type(out).__name__}, not an array of {p0.size} numbers.") from None
        if out.shape != p0.shape:
            raise XregInputError(f"your update function returned shape {out.shape}, not {p0.shape} (= [bias, weights]).")
        if not np.all(np.isfinite(out)):
            raise XregInputError(f"your update function returned a non-finite value at step {t + 1}.")
        P[t + 1] = p = out
    return P


def params_vector(run_params: Mapping[str, np.ndarray], d: int) -> np.ndarray:
    """A recorded run as (T+1, d+1) [bias, w]: one array of d+1 numbers a step, or 'weight' and 'bias'."""
    arrays = {k: np.asarray(v, float) for k, v in run_params.items()}
    if len(arrays) == 1:
        (v,) = arrays.values()
        if v.reshape(v.shape[0], -1).shape[1] == d + 1:
            return v.reshape(v.shape[0], -1)
    names = {k.rsplit(".", 1)[-1]: v for k, v in arrays.items()}
    w = names.get("weight", names.get("kernel"))
    b = names.get("bias")
    if len(arrays) == 2 and w is not None and b is not None and w.reshape(w.shape[0], -1).shape[1] == d and b.reshape(b.shape[0], -1).shape[1] == 1:
        return np.concatenate([b.reshape(b.shape[0], -1), w.reshape(w.shape[0], -1)], axis=1)
    raise XregInputError(f"The trajectory's parameters ({', '.join(f'{k} {v.shape[1:]}' for k, v in arrays.items())}) are not "
                         f"[bias, {d} weights]: one array of {d + 1} numbers (bias first), or 'weight' and 'bias'.")  # fmt: skip


def text(r: UpdateFit) -> str:
    lines = [f"fitted {len(r.fits)} conventions on {r.steps} steps of your update (lr={r.lr:g}, lam={r.lam:g}, {r.rows} rows)"]
    show = lambda f: (f"{f.convention}{'' if f.bias_decayed else ' (bias not decayed)'}: lam={f.lam:.10g} "  # noqa: E731
                      f"(coefficient {f.coefficient:.6g}), residual {f.residual:.3g}x the one-step round-off")  # fmt: skip
    if r.best is None:
        lines.append("no convention reproduces your update to round-off; the closest:")
        lines.append(f"  {show(r.fits[0])}")
        return "\n".join(lines)
    lines.append(f"best fit: {show(r.best)}")
    if r.runner_up is not None:
        lines.append(f"runner-up: {show(r.runner_up)}")
    lines.append(f"torch equivalent: {r.equivalent['torch']}")
    for k in ("optax", "scratch", "sklearn"):
        if r.equivalent.get(k):
            lines.append(f"{k} equivalent: {r.equivalent[k]}")
    lines.append(f"fix: {r.fix}")
    if r.verified:
        lines.append(f"verified: {r.verified}")
    return "\n".join(lines)
