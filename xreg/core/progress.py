"""Progress of a run, as steps done: backends tick, whoever listens shows it (framework-free, no output here).

A backend calls :func:`tick` with the steps done so far; it costs one context-variable read when nobody
listens. :func:`reporting` installs a listener for the runs started inside it (the CLI's progress bar).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Callable, Iterator

_sink: ContextVar[Callable[[int], None] | None] = ContextVar("xreg_progress", default=None)


def tick(done: int) -> None:
    sink = _sink.get()
    if sink is not None:
        sink(done)


@contextlib.contextmanager
def reporting(sink: Callable[[int], None] | None) -> Iterator[None]:
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
