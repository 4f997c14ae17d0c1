"""Per-epoch learning-rate schedules shared by every backend.

The learning rate of every step in epoch ``e`` (0-based) is ``lr_e = lr * factor(e)``, which is what
torch gives when ``scheduler.step()`` is called once after each epoch. The torch backend uses the real
``torch.optim.lr_scheduler`` class named below; NumPy and JAX evaluate the closed form here.

===============  ==========================================  ==================================
schedule         ``lr_e``                                    torch class
===============  ==========================================  ==================================
``constant``     ``lr``                                      none
``step``         ``lr * gamma**(e // step_size)``            ``StepLR(step_size, gamma=0.1)``
``exponential``  ``lr * gamma**e``                           ``ExponentialLR(gamma)``
``cosine``       ``eta_min + (lr-eta_min)*(1+cos(pi*e/T_max))/2``  ``CosineAnnealingLR(T_max=epochs, eta_min=0)``
``lambda``       ``lr * expr(epoch)``                        ``LambdaLR(lambda epoch: expr)``
===============  ==========================================  ==================================

``lambda`` takes ``expr``, an arithmetic expression in ``epoch`` (e.g. ``"0.98**epoch"``); only numbers,
``epoch``, ``+ - * / // % **`` and the functions in :data:`LAMBDA_FUNCTIONS` are allowed.
"""

from __future__ import annotations

import ast
import math
from typing import Any, Callable, Mapping

from xreg.checks import XregInputError, check_choice, check_float, check_int

NAMES = ("constant", "step", "exponential", "cosine", "lambda")
LAMBDA_FUNCTIONS = ("cos", "sin", "exp", "log", "sqrt", "minimum", "maximum")
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
)  # fmt: skip


def _check_expr(expr: Any) -> str:
    bad = XregInputError(
        "The 'expr' parameter of the 'lambda' schedule must be an arithmetic expression in 'epoch' "
        f"using + - * / // % ** and {', '.join(LAMBDA_FUNCTIONS)}. Got {expr!r} instead."
    )
    if not isinstance(expr, str):
        raise bad
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise bad from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise bad
        if isinstance(node, ast.Name) and node.id not in ("epoch", *LAMBDA_FUNCTIONS):
            raise bad
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in LAMBDA_FUNCTIONS):
            raise bad
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise bad
    return expr


def resolve(name: str, options: Mapping[str, Any], epochs: int) -> dict[str, Any]:
    """Fill the defaults of schedule ``name``, check each option, reject unknown ones."""
    check_choice("schedule", name, NAMES)
    defaults: dict[str, Any] = {
        "constant": {},
        "step": {"step_size": None, "gamma": 0.1},
        "exponential": {"gamma": None},
        "cosine": {"T_max": epochs, "eta_min": 0.0},
        "lambda": {"expr": None},
    }[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        allowed = ", ".join(repr(k) for k in defaults) or "none"
        raise XregInputError(f"Unknown option {unknown[0]!r} for schedule '{name}'. Allowed options: {allowed}.")
    out = {**defaults, **options}
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise XregInputError(f"The schedule '{name}' needs the option {missing[0]!r}.")
    checks = {
        "step_size": lambda k, v: check_int(k, v, 1),
        "gamma": lambda k, v: check_float(k, v, 0.0, closed="neither"),
        "T_max": lambda k, v: check_int(k, v, 1),
        "eta_min": lambda k, v: check_float(k, v, 0.0),
        "expr": lambda k, v: _check_expr(v),
    }
    return {k: checks[k](k, v) for k, v in out.items()}


def lr_fn(name: str, options: Mapping[str, Any], lr: float, xp: Any) -> Callable[[Any], Any]:
    """``epoch -> lr_e`` written with the array namespace ``xp`` (numpy or jax.numpy)."""
    o = options
    if name == "constant":
        return lambda e: lr + 0.0 * e
    if name == "step":
        return lambda e: lr * o["gamma"] ** (e // o["step_size"])
    if name == "exponential":
        return lambda e: lr * o["gamma"] ** e
    if name == "cosine":
        return lambda e: o["eta_min"] + (lr - o["eta_min"]) * (1 + xp.cos(math.pi * e / o["T_max"])) / 2
    code = compile(ast.parse(o["expr"], mode="eval"), "<schedule expr>", "eval")
    env = {f: getattr(xp, f) for f in LAMBDA_FUNCTIONS}
    return lambda e: lr * eval(code, {"__builtins__": {}}, {**env, "epoch": e})  # noqa: S307 (checked AST)
