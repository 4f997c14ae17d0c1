"""Parameter checks with one message shape, validated once at the edge.

Every failure is a :class:`XregInputError` (a ``ValueError``) whose text names the parameter, the
allowed range and the value received, in scikit-learn's style::

    The 'lr' parameter must be a float in the range (0, inf). Got -1.0 instead.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable


class XregInputError(ValueError):
    """Bad user input: the CLI prints it as one ``error: ...`` line and exits 2."""


# A number as people type it: ASCII digits, one '.', an exponent ('1_000' and non-ASCII digits, which
# Python's float() accepts, are refused); inf and nan parse here and are refused where a value must be finite.
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|infinity|nan)", re.IGNORECASE | re.ASCII)
INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


def is_number(text: str) -> bool:
    return NUMBER.fullmatch(text.strip()) is not None


def _fmt(value: Any) -> str:
    return repr(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise XregInputError(f"The '{name}' parameter must be one of {listed}. Got {_fmt(value)} instead.")
    return value


def check_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise XregInputError(f"The '{name}' parameter must be a bool. Got {_fmt(value)} instead.")


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An int in [low, high] (either end may be open-ended with None)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    lo = "-inf" if low is None else str(low)
    hi = "inf" if high is None else str(high)
    raise XregInputError(
        f"The '{name}' parameter must be an int in the range [{lo}, {hi}]. Got {_fmt(value)} instead."
    )


def check_float(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    closed: str = "both",
) -> float:
    """A finite real in an interval; ``closed`` is 'both', 'left', 'right' or 'neither'."""
    left_closed = closed in ("both", "left")
    right_closed = closed in ("both", "right")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number:
        v = float(value)
        above = v >= low if left_closed else v > low
        below = v <= high if right_closed else v < high
        if math.isfinite(v) and above and below:
            return v
    lb = "[" if left_closed and math.isfinite(low) else "("
    rb = "]" if right_closed and math.isfinite(high) else ")"
    lo = "-inf" if low == -math.inf else f"{low:g}"
    hi = "inf" if high == math.inf else f"{high:g}"
    raise XregInputError(
        f"The '{name}' parameter must be a float in the range {lb}{lo}, {hi}{rb}. Got {_fmt(value)} instead."
    )
