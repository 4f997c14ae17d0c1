"""Progress of a run, as steps done: backends tick, whoever listens shows it (framework-free, no output here).

A backend calls :func:`tick` with the steps done so far; it costs one context-variable read when nobody
listens. :func:`reporting` installs a listener for the runs started inside it (the CLI's progress bar).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")
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


def interruptible(fn: Callable[[], T]) -> T:
    """``fn()`` in a worker thread while this thread waits in short slices, so Ctrl-C and SIGTERM are
    honoured within a fraction of a second even while ``fn`` is inside one long compiled computation
    (XLA holds no Python bytecode to interrupt). On an interrupt the exception is raised here and the
    worker is left to the process's exit (``worker_running`` tells the CLI to exit at once)."""
    import contextvars
    import threading

    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # the worker hears what this thread's listeners would (reporting)

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
            box["error"] = exc

    worker = threading.Thread(target=context.run, args=(work,), name="xreg-compute", daemon=True)
    _workers.append(worker)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    _workers.remove(worker)
    if "error" in box:
        raise box["error"]
    return box["value"]


_workers: list = []


def worker_running() -> bool:
    """A computation started by :func:`interruptible` is still running (it was interrupted)."""
    return any(w.is_alive() for w in _workers)
