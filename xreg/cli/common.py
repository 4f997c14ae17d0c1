"""What every subcommand shares: the parser that fails in one line, option values, exit codes."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from typing import Any, Callable

from xreg.core.checks import INTEGER, XregInputError, is_number

EXIT_MATCH, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2
EXIT_WRITE = 3  # an output could not be written (a full disk, a file too large, a read-only or failing device)
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143  # 128 + SIGINT, SIGPIPE, SIGTERM
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}


class Terminated(BaseException):
    """SIGTERM, raised where the process is so that every ``finally`` (temporary files) runs."""


class HelpFormatter(argparse.HelpFormatter):
    """Shows each flag's default, where it has one worth showing (not None, not a switched-off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --epoch is not --epochs: a prefix is an unknown flag
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + message)
        raise XregInputError(message)


def real(text: str) -> float:
    """A flag's number: ASCII digits only (``1_0`` and non-ASCII digits are refused, though float() takes them)."""
    if not is_number(text):
        raise argparse.ArgumentTypeError(f"expected a number (digits 0-9, '.', an exponent); got {text!r}")
    return float(text)


def integer(text: str) -> int:
    if INTEGER.fullmatch(text.strip()) is None:
        raise argparse.ArgumentTypeError(f"expected a whole number (digits 0-9); got {text!r}")
    return int(text)


def value(text: str) -> Any:
    """Parse an option value: true/false, a number, or a comma-separated tuple of numbers (ASCII digits
    only) in which 'none' stands for None (Adafactor's eps=none,1e-3); anything else stays text, for the
    option's own check to refuse."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    items = [v.strip() for v in text.split(",")]
    if "," in text and all(is_number(v) or v.lower() == "none" for v in items) and any(map(is_number, items)):
        return tuple(None if v.lower() == "none" else float(v) for v in items)
    if not is_number(text):
        return text
    return int(text) if INTEGER.fullmatch(text.strip()) else float(text)


def pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise XregInputError(f"{flag} takes KEY=VALUE; got {item!r}.")
        out[key.strip()] = value(val)
    return out


def schedule_of(name: str, items: list[str] | None, flag: str) -> tuple[str, dict]:
    """A scheduler ``NAME`` or ``NAME(key=value, ...)`` and its ``flag`` KEY=VALUE options (an option given in both with
    two values is refused): a lambda's
    ``expr`` and SequentialLR's ``schedulers`` stay the text typed, ``milestones`` are ints, 'none' is None."""
    options: dict = {}
    from xreg import schedules

    if "(" in name:
        name, options = schedules.parse_member(name)
    out = pairs(items, flag)
    keys = [item.partition("=")[0].strip() for item in items or []]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice is not None:
        raise XregInputError(f"{flag} {twice}= is given twice; give it once.")
    for item in items or []:
        key, _, val = item.partition("=")
        key = key.strip()
        if key in schedules.RAW_OPTIONS:
            out[key] = val.strip()
        elif key == "milestones":
            parts = [v.strip() for v in val.strip().strip("[]()").split(",")]
            out[key] = tuple(int(v) if INTEGER.fullmatch(v) else v for v in parts)
        elif isinstance(out[key], str) and out[key].strip().lower() == "none":
            out[key] = None
    clash = next((k for k in out if k in options and options[k] != out[k]), None)
    if clash is not None:
        raise XregInputError(f"{name}({clash}={options[clash]!r}) and {flag} {clash}={out[clash]!r} disagree; give one.")
    return name, {**options, **out}


def emit(doc: Any, text: str, json_path: str | None, force: bool = False) -> None:
    """Print ``text``, and write ``doc`` as JSON to ``json_path`` (atomically; ``'-'``: the JSON to
    stdout instead of the text)."""
    import json

    if json_path != "-":
        print(text)
    if not json_path:
        return
    out = json.dumps(finite_json(doc), indent=1, allow_nan=False, default=float)
    if json_path == "-":
        sys.stdout.write(out + "\n")
        return
    from xreg.io.files import write_atomic

    write_atomic(json_path, out, force=force)
    print(f"wrote {json_path}")


def finite_json(doc: Any) -> Any:
    """``doc`` with every non-finite float written as the string 'inf', '-inf' or 'nan' (JSON has no such
    numbers; a weight decay of 1e308 can make one)."""
    import math

    if isinstance(doc, float) and not math.isfinite(doc):
        return "nan" if math.isnan(doc) else ("inf" if doc > 0 else "-inf")
    if isinstance(doc, dict):
        return {k: finite_json(v) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [finite_json(v) for v in doc]
    return doc


def guarded(run: Callable[[], int], program: bool = False) -> int:
    """Run a subcommand; every failure is one ``error: ...`` line and a documented exit status, never a
    traceback: 2 bad input, 3 an output could not be written, 130 Ctrl-C, 141 the reader of stdout left,
    143 SIGTERM. A temporary file being written is removed on each (:func:`xreg.io.files.write_atomic`).

    ``program``: this is the process itself (not a caller's): a signal that comes while no output is being
    written ends it at once, with its line. An exception raised from a signal handler is lost where it lands
    in a callback Python only reports (a garbage-collection callback of jax's, during its import), and the
    run would go on."""
    from xreg.io import files

    def stop(signum, frame):
        if program and not files.writing():
            said, code = ("terminated", EXIT_TERMINATED) if signum == signal.SIGTERM else ("interrupted", EXIT_INTERRUPTED)
            try:  # what was printed before, then the line, past any write the signal interrupted
                sys.stderr.flush()
            except Exception:  # noqa: BLE001 (a reentrant flush, a closed stderr)
                pass
            try:
                os.write(2, f"error: {said}\n".encode())
            except OSError:
                pass
            os._exit(code)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
        previous_int = signal.signal(signal.SIGINT, stop) if program else None
    except ValueError:  # not the main thread: leave the default
        previous = previous_int = None
    try:
        return run()
    except XregInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:  # the reader left (``xreg ... | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        print("error: standard output was closed before the output was written (broken pipe)", file=sys.stderr)
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.strerror is None:  # raised by xreg with its own sentence (FileExistsError: pass --force ...)
            text = str(exc)
        else:
            text = exc.strerror + (f": '{exc.filename}'" if exc.filename else "")
        writing = exc.errno in _WRITE_ERRNOS
        print(f"error: {'could not write the output: ' if writing else ''}{text}", file=sys.stderr)
        return EXIT_WRITE if writing else EXIT_BAD_INPUT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
