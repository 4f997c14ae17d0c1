"""A backend in a child process: its framework imported there, at once, while this process goes on.

The default comparison waits mostly on imports that nothing else needs: torch, and the ``torch._dynamo``
that ``torch.optim`` imports on its first step (together ~2.5 s of a 2-core machine's one core). A
:class:`Remote` starts a fresh interpreter (this Python, ``-P``, with this process's ``sys.path``; not
multiprocessing's spawn, which would run the caller's ``__main__`` again) that imports the backend right
away and then trains the runs handed to it, one after another, sending back each run's progress and its
:class:`~xreg.core.spec.Trajectory`, or the failure's type and message, pickled over a socket pair. The
numbers are the backend's own: the same code on the same inputs, in another process.

The child ignores Ctrl-C from its first line (the parent says "interrupted" once and kills it; it stays
in the parent's process group, so Ctrl-Z stops both), writes nothing to the parent's stdout (its stderr is collected and
passed on), and ends itself within a fraction of a second once its parent is gone, whatever ended it.
Where the child cannot be started, or ends before it has loaded its backend, its runs are made in this
process instead (:attr:`Remote.lost`); a child that dies during a run fails that run, with the reason.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from xreg.core.spec import Dataset, ExperimentSpec, Trajectory

TICK_EVERY = 0.1  # seconds between the progress messages of one run (a bar redraws no faster)
STDERR_KEPT = 64 * 1024  # the child's last bytes of stderr kept (passed on, or said with its death)


class RemoteError(Exception):
    """A run that failed in the child: ``kind`` is its exception's type name (or 'unavailable')."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class Lost(Exception):
    """The child could not be started or reached, or ended before it loaded its backend: run here instead."""


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)  # the parent is gone (killed, or exited without closing): so is its work


def _serve(name: str, conn, parent: int) -> None:
    """The child: import backend ``name``, say it is ready, then take ('data', token, Dataset) and ('train',
    key, spec, token, ticks) messages until None."""
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    from xreg import backends
    from xreg.core import progress

    unavailable = None
    try:
        backends.load(name)
    except backends.BackendUnavailable as exc:
        unavailable = str(exc)
    conn.send(("ready",))
    datasets: dict[int, Dataset] = {}
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        if job[0] == "data":
            datasets[job[1]] = job[2]
            continue
        _, key, spec, token, ticks = job
        if unavailable is not None:
            conn.send(("error", key, "unavailable", unavailable))
            continue
        last, sent = 0.0, [None, None]  # [done of the last tick, of the last one sent]

        def tick(done: int) -> None:
            nonlocal last
            now = time.monotonic()
            sent[0] = done
            if now - last >= TICK_EVERY:
                last, sent[1] = now, done
                conn.send(("tick", key, done))

        try:
            with progress.reporting(tick if ticks else None):
                trajectory = backends.train(name, spec, datasets[token])
            if sent[0] != sent[1]:
                conn.send(("tick", key, sent[0]))  # the last, held back by the throttle: the bar ends full
            conn.send(("done", key, trajectory))
        except Exception as exc:  # noqa: BLE001 (the parent reports it as the run's failure)
            kind = "unavailable" if isinstance(exc, backends.BackendUnavailable) else type(exc).__name__
            conn.send(("error", key, kind, str(exc)))


def main() -> None:
    """The child's entry: ``-c ... NAME FD PARENT_PID``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name, fd, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        _serve(name, multiprocessing.connection.Connection(fd), parent)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent closed its end (it is done, or gone)
    sys.stderr.flush()
    os._exit(0)  # nothing is left to write: skip the interpreter's teardown of torch (~1 s)


_started: dict[str, "Remote"] = {}  # children started ahead of need (:func:`prestart`), by backend


def prestart(name: str) -> None:
    """Start backend ``name``'s child now, ahead of the run that will use it (:func:`take`): the program
    calls this first thing, when its arguments ask for a comparison that runs torch beside the others.
    Unused, it ends when the program does (within 0.2 s of it)."""
    if name not in _started:
        try:
            _started[name] = Remote(name)
        except Lost:
            pass


def started(name: str) -> bool:
    """Whether the program started backend ``name``'s child ahead (:func:`prestart`)."""
    return name in _started


def discard(name: str) -> None:
    """End the child started ahead for ``name``, where the runs turn out not to use it."""
    remote = _started.pop(name, None)
    if remote is not None:
        remote.close()


def take(name: str) -> "Remote":
    """The child started ahead for backend ``name`` (if still there), or a new one; :class:`Lost` where
    none can be started."""
    remote = _started.pop(name, None)
    return remote if remote is not None and not remote.lost else Remote(name)


class Remote:
    """Backend ``name`` in a child process, started (and importing its framework) on construction."""

    def __init__(self, name: str):
        self.name = name
        self._conn, child = multiprocessing.Pipe()
        code = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); import sys; "  # a terminal's Ctrl-C: the parent's
                f"sys.path[:] = {sys.path!r}; from xreg.backends.remote import main; main()")
        try:
            self._proc = subprocess.Popen([sys.executable, "-P", "-c", code, name, str(child.fileno()), str(os.getpid())],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          pass_fds=(child.fileno(),))  # fmt: skip
        except (OSError, ValueError) as exc:
            self._conn.close()
            raise Lost(f"the {name} worker process could not be started: {exc}") from exc
        finally:
            child.close()
        self._listeners: dict[Any, Callable[[int], None] | None] = {}
        self._results: dict[Any, tuple] = {}
        self._pending: set = set()
        self._sent: dict[int, int] = {}  # id(Dataset) -> its token in the child
        self._kept: list[Dataset] = []
        self._ready = False
        self._gone: str | None = None  # why the child can no longer be heard from
        self._stderr = b""
        self._cond = threading.Condition()
        self._outbox: queue.Queue = queue.Queue()  # sent by a thread: a large dataset never blocks the caller
        self._threads = [threading.Thread(target=t, name=f"xreg-{name}-{t.__name__[1:]}", daemon=True)
                         for t in (self._read, self._write, self._drain)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    @property
    def lost(self) -> bool:
        """The child ended (or could not be reached) before it loaded its backend: nothing was run there."""
        with self._cond:
            return self._gone is not None and not self._ready

    def submit(self, key: Any, spec: ExperimentSpec, data: Dataset, listener: Callable[[int], None] | None = None) -> None:
        """Queue one run; ``listener(done)`` hears its progress (from another thread)."""
        if id(data) not in self._sent:  # each dataset crosses once (the runs of a comparison share one)
            self._sent[id(data)] = len(self._sent)
            self._kept.append(data)  # held, so that its id is not reused for another while the child keeps it
            self._outbox.put(("data", self._sent[id(data)], data))
        token = self._sent[id(data)]
        self._listeners[key] = listener
        self._pending.add(key)
        self._outbox.put(("train", key, spec, token, listener is not None))

    def result(self, key: Any) -> Trajectory:
        """The run's trajectory, once it is done (waiting in short slices: Ctrl-C is honoured at once); its
        failure as :class:`RemoteError`; :class:`Lost` where the child ended before loading its backend."""
        if key not in self._listeners:
            raise KeyError(key)
        with self._cond:
            while key not in self._results and self._gone is None:
                self._cond.wait(0.1)
            got = self._results.pop(key, None)
            lost = self.lost  # (the condition's lock is reentrant)
        if got is None and lost:
            raise Lost(self._gone)
        if got is None:
            raise RemoteError("WorkerDied", self._gone or "the worker process ended")
        if got[0] == "done":
            return got[1]
        raise RemoteError(got[1], got[2])

    def _lose(self, why: str) -> None:
        with self._cond:
            if self._gone is None:
                self._gone = why
            self._cond.notify_all()

    def _ended(self) -> str:
        try:
            code = self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        tail = self._stderr.decode(errors="replace").strip().splitlines()[-1:] if self._stderr else []
        return f"the {self.name} worker process ended ({how})" + (f": {tail[0]}" if tail else "")

    def _read(self) -> None:
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "ready":
                    with self._cond:
                        self._ready = True
                    continue
                if msg[0] == "tick":
                    listener = self._listeners.get(msg[1])
                    try:
                        if listener is not None:
                            listener(msg[2])
                    except Exception:  # noqa: BLE001 (a progress display must not lose the run)
                        self._listeners[msg[1]] = None
                    continue
                with self._cond:
                    self._results[msg[1]] = (msg[0], *msg[2:])
                    self._pending.discard(msg[1])
                    self._cond.notify_all()
        except (EOFError, OSError):
            self._lose(self._ended())
        except BaseException as exc:  # noqa: BLE001 (an unpicklable message, memory: said, never a hang)
            self._lose(f"the {self.name} worker's message could not be read: {type(exc).__name__}: {exc}")

    def _write(self) -> None:
        while True:
            msg = self._outbox.get()
            try:
                self._conn.send(msg)
            except (OSError, ValueError):
                return  # the child is gone: the reader says so
            if msg is None:
                return

    def _drain(self) -> None:
        for chunk in iter(lambda: self._proc.stderr.read1(4096), b""):
            self._stderr = (self._stderr + chunk)[-STDERR_KEPT:]

    def close(self) -> None:
        """End the child: at once if a run is still going (an interrupt), else after its last message; what
        it wrote to stderr is passed on to this process's stderr (a warning torch printed, say)."""
        busy = bool(self._pending)
        if busy or self._gone is not None:
            self._proc.kill()
        else:
            self._outbox.put(None)
        try:
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._threads[2].join(timeout=2)  # the child's stderr read to its end
        self._proc.stderr.close()
        if not busy and self._stderr:
            sys.stderr.write(self._stderr.decode(errors="replace"))
        self._conn.close()
