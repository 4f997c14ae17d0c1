"""What every subcommand shares: the parser that fails in one line, option values, exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from xreg.checks import XregInputError

EXIT_MATCH, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


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


def value(text: str) -> Any:
    """Parse an option value: true/false, a number, or a comma-separated pair of numbers."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        if "," in text:
            return tuple(float(v) for v in text.split(","))
        as_float = float(text)
        return int(text) if text.strip().lstrip("-").isdigit() else as_float
    except ValueError:
        return text


def pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise XregInputError(f"{flag} takes KEY=VALUE; got {item!r}.")
        out[key.strip()] = value(val)
    return out


def emit(doc: Any, text: str, json_path: str | None, force: bool = False) -> None:
    """Print ``text``, and write ``doc`` as JSON to ``json_path`` (atomically; ``'-'``: the JSON to
    stdout instead of the text)."""
    import json

    out = json.dumps(doc, indent=1, allow_nan=False, default=float)
    if json_path == "-":
        sys.stdout.write(out + "\n")
        return
    print(text)
    if json_path:
        from xreg.io.files import write_atomic

        write_atomic(json_path, out, force=force)
        print(f"wrote {json_path}")


def guarded(run: Callable[[], int]) -> int:
    """Run a subcommand; bad input becomes one ``error: ...`` line and exit 2, never a traceback."""
    try:
        return run()
    except XregInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FileExistsError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (``xreg ... | head``): stop quietly, as a pipeline expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141
