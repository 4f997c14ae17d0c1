"""LambdaLR (lr_t = lr * f(t)) and MultiplicativeLR (lr_t = lr_{t-1} * f(t) for t > 0), with f an arithmetic
expression ``expr`` in ``epoch`` (torch's name for the count the lambda receives: the epoch, or the step
with ``--schedule-every step``), using ``+ - * / // % **`` and :data:`FUNCTIONS`.

optax: ``lambda count: lr * f(count)``; MultiplicativeLR's product as a table ``lr * cumprod(f(t))``.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from xreg.core.checks import XregInputError
from xreg.schedules.base import REQUIRED, Scheduler, Twin

FUNCTIONS = ("cos", "sin", "exp", "log", "sqrt", "minimum", "maximum")
MAX_EXPR = 500  # characters: an expression is a formula, not a program
_ALLOWED = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load, ast.Call,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
)  # fmt: skip


def check_expr(key: str, expr: Any) -> str:
    bad = XregInputError(
        f"The '{key}' option must be an arithmetic expression in 'epoch' using + - * / // % ** and "
        f"{', '.join(FUNCTIONS)}. Got {expr!r} instead."
    )
    if not isinstance(expr, str):
        raise bad
    if len(expr) > MAX_EXPR:
        raise XregInputError(f"The '{key}' expression is longer than {MAX_EXPR} characters.")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise bad from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise bad
        if isinstance(node, ast.Name) and node.id not in ("epoch", *FUNCTIONS):
            raise bad
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise bad
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise bad
    return expr


class _Floats(ast.NodeTransformer):
    """Every number as a float: ``9**9**9`` overflows at once instead of building a huge integer."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.copy_location(ast.Constant(float(node.value)), node)


def factor(expr: str, xp: Any = None):
    """``epoch -> f(epoch)`` with the array namespace ``xp`` (None: Python floats and numpy's functions)."""
    import numpy as np

    ns = np if xp is None else xp
    tree = ast.fix_missing_locations(_Floats().visit(ast.parse(expr, mode="eval")))
    code = compile(tree, "<schedule expr>", "eval")
    env = {"__builtins__": {}, **{f: getattr(ns, f) for f in FUNCTIONS}}
    if xp is None:
        return lambda e: float(eval(code, env, {"epoch": float(e)}))  # noqa: S307 (checked AST, floats only)
    return lambda e: eval(code, env, {"epoch": e})  # noqa: S307 (checked AST)


class LambdaTwin(Twin):
    def get_lr(self) -> float:
        return self.base_lr * factor(self.o["expr"])(self.last_epoch)


class MultiplicativeTwin(Twin):
    def get_lr(self) -> float:
        if self.last_epoch > 0:
            return self.group["lr"] * factor(self.o["expr"])(self.last_epoch)
        return self.group["lr"]


def _torch_of(name: str):
    """torch's class ``name`` (LambdaLR, MultiplicativeLR) built with ``lr_lambda``: the expression as a function of the epoch."""

    def build(opt, o):
        import torch

        f = factor(o["expr"])
        return getattr(torch.optim.lr_scheduler, name)(opt, lr_lambda=lambda epoch: f(epoch))

    return build


def _jnp_expr(expr: str) -> str:
    """The expression as jnp code of ``count`` (the same text, its functions from jnp)."""
    tree = ast.parse(expr, mode="eval")

    class ToJnp(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id == "epoch":
                return ast.copy_location(ast.Name("count", ast.Load()), node)
            return ast.copy_location(ast.Attribute(ast.Name("jnp", ast.Load()), node.id, ast.Load()), node)

    return ast.unparse(ToJnp().visit(tree))


def _lambda_exact(o, ctx):
    return [f"schedule = lambda count: lr * jnp.broadcast_to({_jnp_expr(o['expr'])}, jnp.shape(count))"]


def _mult_exact(o, ctx):
    n = max(ctx.calls, 1)
    return [f"t = jnp.arange(1.0, {n})  # torch multiplies from t = 1 on",
            f"factors = jnp.broadcast_to((lambda count: {_jnp_expr(o['expr'])})(t), t.shape)",
            "table = jnp.cumprod(jnp.concatenate([jnp.ones(1), factors]))",
            f"schedule = lambda count: lr * table[jnp.minimum(count, {n - 1}).astype(int)]"]  # fmt: skip


def _check_values(name: str):
    def validate(o, ctx):
        f = factor(o["expr"])
        import numpy as np

        with np.errstate(all="raise"):
            for t in range(ctx.calls):
                try:
                    v = f(t)
                except (ZeroDivisionError, OverflowError, ValueError, FloatingPointError, TypeError) as exc:
                    raise XregInputError(f"The {name} expr {o['expr']!r} fails at epoch {t}: {type(exc).__name__}: {exc}.") from None
                if not math.isfinite(v) or v < 0:
                    what = "negative" if v < 0 else "not finite"
                    raise XregInputError(f"The {name} expr {o['expr']!r} makes the learning rate {what} at epoch {t} (factor {v!r}).")

    return validate


LAMBDA = Scheduler(
    name="LambdaLR", alias="lambda", formula="lr * f(t)", defaults={"expr": REQUIRED}, checks={"expr": check_expr},
    twin=LambdaTwin, torch=_torch_of("LambdaLR"), exact=_lambda_exact, validate=_check_values("LambdaLR"),
)  # fmt: skip
MULTIPLICATIVE = Scheduler(
    name="MultiplicativeLR", formula="lr * f(1)*f(2)*...*f(t)", defaults={"expr": REQUIRED}, checks={"expr": check_expr},
    twin=MultiplicativeTwin, torch=_torch_of("MultiplicativeLR"), exact=_mult_exact, validate=_check_values("MultiplicativeLR"),
    exact_note="a table of torch's running product",
)  # fmt: skip
