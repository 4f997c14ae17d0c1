"""``xreg`` / ``python -m xreg``: one entry point, one module per subcommand.

    xreg compare [flags]     run one experiment in every framework and explain the differences
    xreg explain OPTIMIZER   the update equations, exact optax chain and naive port of one optimizer
    xreg diagnose A.npz B.npz  why two recorded runs differ, and the fix

Flags without a subcommand are taken as ``compare`` flags (``xreg --optimizer adam`` = ``xreg compare
--optimizer adam``). Each subcommand is a module here with a ``run(argv)``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

from xreg.cli.common import EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_MATCH, guarded

SUBCOMMANDS = {
    "compare": "run one experiment in PyTorch, JAX/Optax and NumPy and explain every difference",
    "explain": "print the update equations, exact optax chain and naive port of one torch optimizer",
    "sweep": "train one experiment over a grid of hyperparameters (vmapped JAX, verified in torch and NumPy)",
    "bench": "time the JAX path against plain NumPy and torch on this machine, with its memory bandwidth",
    "translate": "one torch.optim setting as torch code, an exact optax chain, a scratch loop, L2 terms and sklearn's C",
    "diagnose": "why do two recorded runs (xreg.record) differ: first diverging step, stage, cause, fix",
    "reproduce": "regenerate a published result; 'reproduce decoupling': Loshchilov & Hutter's AdamW grids",
}


def usage() -> str:
    from xreg import __version__

    lines = [f"xreg {__version__}: why don't my PyTorch, JAX/Optax and NumPy runs give the same numbers?", "",
             "usage: xreg [--version] [--help] <command> [flags]", "", "commands:"]  # fmt: skip
    lines += [f"  {name:10} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "Without a command, the flags are compare's: 'xreg --lr 0.1' runs 'xreg compare --lr 0.1'.",
              "'xreg COMMAND --help' lists a command's flags and their defaults."]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Every path through here, help and version included, is one ``guarded`` call: a closed pipe, Ctrl-C
    or SIGTERM at any point is one line and its exit status."""
    if sys.stdout is None:  # started with standard output closed (``xreg >&-``): the output would be lost
        print("error: standard output is closed; nothing would be shown (redirect it to a file or a pipe)", file=sys.stderr)
        return EXIT_BROKEN_PIPE
    for stream in (sys.stdout, sys.stderr):  # an ASCII locale: the table's rules print as '?', not a traceback
        if stream is not None and hasattr(stream, "reconfigure"):
            try:
                "─".encode(stream.encoding or "ascii")
            except (UnicodeEncodeError, LookupError):
                stream.reconfigure(errors="replace")
    code = guarded(lambda: _main(argv, program=argv is None), program=argv is None)
    if argv is None:  # the program itself: its outputs are written and closed; exit now, without the interpreter's
        try:  # teardown of XLA and torch (~0.3 s), or the wait for a compiled computation an interrupt left running
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if sys.stderr is not None:  # started with stderr closed (2>&-)
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


def _negative_values(args: list[str]) -> list[str]:
    """``--flag -inf`` (or -nan, -1e5, -16,8) as ``--flag=-inf``: argparse takes a token it does not read as a negative
    number for an option and says 'expected one argument'; joined, the value gets the option's own check."""
    out: list[str] = []
    for tok in args:
        prev = out[-1] if out else ""
        if tok.startswith("-") and prev.startswith("--") and "=" not in prev and prev != "--" and _is_number(tok):
            out[-1] = f"{prev}={tok}"
        else:
            out.append(tok)
    return out


def _is_number(tok: str) -> bool:
    """A number, or a comma list of them (``-16,8``; ``-1,1``)."""
    try:
        for part in tok.split(","):
            float(part)
    except ValueError:
        return False
    return True


# compare's flags after which the runs are not torch's beside other backends' on the cpu, or there are none
_NOT_AHEAD = ("--backend", "--device", "--explain", "--list", "--help", "-h")


def _start_torch_ahead(args: list[str]) -> None:
    """The program's comparison with the default run set (no command or compare, then flags only) runs torch
    beside JAX and NumPy: start torch's child process first thing, so that its import (~2.5 s of one core)
    overlaps with xreg's own loading (:mod:`xreg.backends.remote`). The runs decide whether it is used; an
    unused one ends with the program."""
    flags = args[1:] if args[:1] == ["compare"] else args
    if (not flags or flags[0].startswith("-")) and not any(a.split("=")[0] in _NOT_AHEAD for a in flags):
        from xreg.backends import remote

        remote.prestart("torch")


def _main(argv: Sequence[str] | None, program: bool = False) -> int:
    args = _negative_values(list(sys.argv[1:] if argv is None else argv))
    if args[:1] in (["--version"], ["-V"]):
        from xreg import __version__

        print(f"xreg {__version__}")
        return EXIT_MATCH
    if args[:1] in (["-h"], ["--help"], ["help"]):
        print(usage())
        return EXIT_MATCH
    if args and args[0] in SUBCOMMANDS and args[0] != "compare":  # each is the module xreg.cli.<name>
        module = importlib.import_module(f"xreg.cli.{args[0]}")
        return module.run(args[1:])
    if program:
        _start_torch_ahead(args)
    if args[:1] == ["compare"]:
        args = args[1:]
    elif args and not args[0].startswith("-"):
        print(f"error: unknown command {args[0]!r}; commands: {', '.join(SUBCOMMANDS)} (see xreg --help)",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    from xreg.cli import compare

    return compare.run(args)
