"""Scenario: the worked example every regularization tutorial starts from, in three frameworks.

Linear model with MSE, weight = bias = 1, x = [2, 4], y = [7, 11], SGD lr 0.1, lam 1, one step.
By hand: dL/dw = -32 and dL/db = -10, so
  torch.optim.SGD(weight_decay=1):        w = 1 - 0.1*(-32 + 1)   = 4.1    b = 1.9
  scratch loop, (sum grad + lam*w)/m, m=2: w = 1 - 0.1*(-32 + 0.5) = 4.15   b = 1.95

Run:  python comparisons/worked_example.py
The same through the CLI:
  xreg compare --data comparisons/worked_example.csv --target y --model linear --lr 0.1 --lam 1 \
      --epochs 1 --init constant --init-scale 1 --test-fraction 0 --convention coupled --convention scratch
"""

from __future__ import annotations

import sys

import numpy as np

from xreg import backends
from xreg.core.spec import Dataset, ExperimentSpec
from xreg.semantics import conventions

DATA = Dataset("worked", np.array([[2.0], [4.0]]), np.array([7.0, 11.0]), np.zeros((0, 1)), np.zeros(0), ("x",))
SPEC = ExperimentSpec(model="linear", lr=0.1, lam=1.0, epochs=1, init="constant", init_scale=1.0)


def by_formula(convention: str) -> tuple[float, float]:
    """One SGD step from w = b = 1 with the analytic MSE gradient and the convention's coefficient."""
    x, y, w, b = np.array([2.0, 4.0]), np.array([7.0, 11.0]), 1.0, 1.0
    r = w * x + b - y
    gw, gb = 2 * np.mean(r * x), 2 * np.mean(r)
    c = conventions.gradient_coefficient(convention, SPEC.lam, m=2)
    return w - SPEC.lr * (gw + c * w), b - SPEC.lr * (gb + c * b)


def main() -> int:
    print(f"{'backend':8} {'convention':10} {'weight':>8} {'bias':>8}   formula")
    ok = True
    for convention in ("coupled", "scratch"):
        expect = by_formula(convention)
        for backend in backends.NAMES:
            t = backends.train(backend, SPEC.replace(convention=convention), DATA)
            got = tuple(t.flat[-1])
            good = np.allclose(got, expect, rtol=0, atol=1e-12)
            ok &= bool(good)
            print(f"{backend:8} {convention:10} {got[0]:8.4f} {got[1]:8.4f}   "
                  f"{conventions.CONVENTIONS[convention].formula}  {'ok' if good else 'WRONG'}")
    print("torch.optim.SGD(weight_decay=1) gives w=4.1, b=1.9; the scratch lam/m form gives w=4.15, b=1.95.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
