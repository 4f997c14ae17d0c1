"""The progress bar of ``xreg compare``: one line per run (steps done / total) on stderr, shown only
on a terminal, only once the work has taken more than a second, and never with ``--quiet``. It is
transient: the bar leaves the screen when the runs are done."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

DELAY = 1.0  # seconds of work before a bar appears (XREG_PROGRESS_DELAY overrides it: tests set 0, not a fast machine)
EVERY = 0.1  # seconds between redraws of one run's bar


class Bars:
    def __init__(self, enabled: bool | None = None):
        self.enabled = (sys.stderr is not None and sys.stderr.isatty()) if enabled is None else enabled
        self.start = time.monotonic()
        self.delay = _delay()
        self.progress = None
        self.lock = threading.Lock()  # runs report from two threads (a compiled run's worker, the torch child's reader)

    def _ensure(self):
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                                     TimeElapsedColumn(), console=Console(stderr=True), transient=True)  # fmt: skip
            self.progress.start()
        return self.progress

    def on_run(self, label: str, total: int) -> Callable[[int], None] | None:
        if not self.enabled:
            return None
        task = None
        last = 0.0

        def sink(done: int) -> None:
            nonlocal task, last
            now = time.monotonic()
            if now - self.start < self.delay or (now - last < EVERY and done < total):
                return
            last = now
            with self.lock:
                if task is None:
                    task = self._ensure().add_task(label, total=total)
                self.progress.update(task, completed=done)

        return sink

    def close(self) -> None:
        with self.lock:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None


def _delay() -> float:
    try:
        value = float(os.environ.get("XREG_PROGRESS_DELAY", DELAY))
    except ValueError:
        return DELAY
    return value if value >= 0 else DELAY
