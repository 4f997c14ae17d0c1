"""A backend in a child process: its framework imported there, at once, while this process goes on.

The default comparison waits mostly on imports that nothing else needs: torch, and the ``torch._dynamo``
that ``torch.optim`` imports on its first step (together ~2.5 s of a 2-core machine's one core). A
:class:`Remote` starts a fresh interpreter (this Python, ``-P``, importing this xreg; not multiprocessing's
spawn, which would run the caller's ``__main__`` again) that imports the backend right away and then
trains the runs handed to it, one after another, sending back each run's progress and its
:class:`~xreg.core.spec.Trajectory`, or the failure's type and message, pickled over a socket pair. The
numbers are the backend's own: the same code on the same inputs, in another process.

The child ignores Ctrl-C (the parent says "interrupted" once and ends it) and ends itself within a
fraction of a second once its parent is gone, whatever ended the parent.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from xreg.core.spec import Dataset, ExperimentSpec, Trajectory

TICK_EVERY = 0.1  # seconds between the progress messages of one run (a bar redraws no faster)


class RemoteError(Exception):
    """A run that failed in the child: ``kind`` is its exception's type name (or 'unavailable')."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)  # the parent is gone (killed, or exited without closing): so is its work


def _serve(name: str, conn, parent: int) -> None:
    """The child: import backend ``name``, then train each (key, spec, data, ticks) received until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from xreg import backends
    from xreg.core import progress

    unavailable = None
    try:
        backends.load(name)
    except backends.BackendUnavailable as exc:
        unavailable = str(exc)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        key, spec, data, ticks = job
        if unavailable is not None:
            conn.send(("error", key, "unavailable", unavailable))
            continue
        last = 0.0

        def tick(done: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= TICK_EVERY:
                last = now
                conn.send(("tick", key, done))

        try:
            with progress.reporting(tick if ticks else None):
                trajectory = backends.train(name, spec, data)
            conn.send(("done", key, trajectory))
        except Exception as exc:  # noqa: BLE001 (the parent reports it as the run's failure)
            kind = "unavailable" if isinstance(exc, backends.BackendUnavailable) else type(exc).__name__
            conn.send(("error", key, kind, str(exc)))


def main() -> None:
    """The child's entry: ``-c ... NAME FD PARENT_PID``."""
    name, fd, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    _serve(name, multiprocessing.connection.Connection(fd), parent)
    sys.stderr.flush()
    os._exit(0)  # nothing is left to write: skip the interpreter's teardown of torch (~1 s), which the parent would wait on


_started: dict[str, "Remote"] = {}  # children started ahead of need (:func:`prestart`), by backend


def prestart(name: str) -> None:
    """Start backend ``name``'s child now, ahead of the run that will use it (:func:`take`): the program
    calls this first thing, when its arguments ask for a comparison that runs torch beside the others."""
    if name not in _started:
        _started[name] = Remote(name)


def take(name: str) -> "Remote":
    """The child started ahead for backend ``name``, or a new one."""
    remote = _started.pop(name, None)
    return remote if remote is not None and remote._proc.poll() is None else Remote(name)


class Remote:
    """Backend ``name`` in a child process, started (and importing its framework) on construction."""

    def __init__(self, name: str):
        self.name = name
        self._conn, child = multiprocessing.Pipe()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the dir holding this xreg
        code = f"import sys; sys.path.insert(0, {root!r}); from xreg.backends.remote import main; main()"
        self._proc = subprocess.Popen([sys.executable, "-P", "-c", code, name, str(child.fileno()), str(os.getpid())],
                                      stdin=subprocess.DEVNULL, pass_fds=(child.fileno(),))  # fmt: skip
        child.close()
        self._listeners: dict[Any, Callable[[int], None] | None] = {}
        self._results: dict[Any, tuple] = {}
        self._pending: set = set()
        self._gone = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=f"xreg-{name}-reader", daemon=True)
        self._reader.start()

    def submit(self, key: Any, spec: ExperimentSpec, data: Dataset, listener: Callable[[int], None] | None = None) -> None:
        """Queue one run; ``listener(done)`` hears its progress (from another thread)."""
        self._listeners[key] = listener
        self._pending.add(key)
        self._conn.send((key, spec, data, listener is not None))

    def result(self, key: Any) -> Trajectory:
        """The run's trajectory, once it is done (waiting in short slices: Ctrl-C is honoured at once);
        its failure as :class:`RemoteError`."""
        with self._cond:
            while key not in self._results and not self._gone:
                self._cond.wait(0.1)
            got = self._results.pop(key, None)
        if got is None:
            raise RemoteError("unavailable", f"the {self.name} worker process ended (exit status {self._proc.poll()})")
        if got[0] == "done":
            return got[1]
        raise RemoteError(got[1], got[2])

    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                with self._cond:
                    self._gone = True
                    self._cond.notify_all()
                return
            if msg[0] == "tick":
                listener = self._listeners.get(msg[1])
                if listener is not None:
                    listener(msg[2])
                continue
            with self._cond:
                self._results[msg[1]] = (msg[0], *msg[2:])
                self._pending.discard(msg[1])
                self._cond.notify_all()

    def close(self) -> None:
        """End the child: at once if a run is still going (an interrupt), else after its last message."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        try:
            self._proc.wait(timeout=0 if self._pending else 1.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._conn.close()
