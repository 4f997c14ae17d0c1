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

from xreg.core.checks import XregInputError, check_choice, check_float, check_int

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
    resolved = {k: checks[k](k, v) for k, v in out.items()}
    if name == "lambda":
        _check_every_epoch(resolved["expr"], epochs)
    return resolved


MAX_EXPR = 500  # characters: an expression is a formula, not a program


class _Floats(ast.NodeTransformer):
    """Every number as a float: ``9**9**9`` overflows at once instead of building a huge integer."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.copy_location(ast.Constant(float(node.value)), node)


def _check_every_epoch(expr: str, epochs: int) -> None:
    """Evaluate the factor on every epoch before any backend runs: finite and >= 0, or one error naming the epoch."""
    import numpy as np

    if len(expr) > MAX_EXPR:
        raise XregInputError(f"The 'expr' of the 'lambda' schedule is longer than {MAX_EXPR} characters.")
    tree = ast.fix_missing_locations(_Floats().visit(ast.parse(expr, mode="eval")))
    code = compile(tree, "<schedule expr>", "eval")
    env = {"__builtins__": {}, **{f: getattr(np, f) for f in LAMBDA_FUNCTIONS}}
    with np.errstate(all="raise"):
        for e in range(epochs):
            try:
                v = float(eval(code, env, {"epoch": float(e)}))  # noqa: S307 (checked AST, floats only)
            except (ZeroDivisionError, OverflowError, ValueError, FloatingPointError, TypeError) as exc:
                raise XregInputError(f"The 'lambda' schedule {expr!r} fails at epoch {e}: {type(exc).__name__}: {exc}.") from None
            if not math.isfinite(v) or v < 0:
                what = "negative" if v < 0 else "not finite"
                raise XregInputError(f"The 'lambda' schedule {expr!r} makes the learning rate {what} at epoch {e} (factor {v!r}).")


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
