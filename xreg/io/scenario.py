"""Scenario files: one porting case each, as ``comparisons/NAME.toml``, runnable with
``xreg compare comparisons/NAME.toml`` (flags on the command line override the file's).

    title = "Adam + L2 is not AdamW"
    summary = "torch Adam(weight_decay) adds lam*w to the gradient; AdamW decays decoupled"
    [compare]                   # compare's flags by their long names (dashes or underscores)
    optimizer = "adam"
    convention = ["torch", "decoupled"]
    [[expect]]                  # the verdict of one pair of runs, and why
    a = "torch/torch"
    b = "torch/decoupled"
    verdict = "mismatch"
    why = "..."

Nothing here runs anything or imports a framework.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xreg.checks import XregInputError

VERDICTS = ("match", "mismatch", "round-off (chaotic)")  # 'match' also holds for 'round-off (bfloat16 kernel)'
# where this CPU's bfloat16 kernel is not the one xreg emulates (xreg.analysis.triage)
ROOT = Path(__file__).resolve().parent.parent.parent / "comparisons"  # the repository's scenario folder


@dataclass(frozen=True)
class Expectation:
    a: str
    b: str
    verdict: str
    why: str


@dataclass(frozen=True)
class Scenario:
    path: Path
    title: str
    summary: str
    flags: dict[str, Any]
    expect: tuple[Expectation, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.path.stem


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file: one ``XregInputError`` naming what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise XregInputError(f"scenario '{p}' does not exist (xreg compare --list shows the shipped ones).")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise XregInputError(f"scenario '{p}' is not valid TOML: {exc}.") from None
    problems = []
    unknown = sorted(set(doc) - {"title", "summary", "compare", "expect"})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    for key in ("title", "summary"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            problems.append(f"'{key}' must be a non-empty string")
    flags = doc.get("compare", {})
    if not isinstance(flags, dict):
        problems.append("'compare' must be a table of flags")
        flags = {}
    expects = []
    for i, e in enumerate(doc.get("expect", [])):
        if not isinstance(e, dict) or sorted(e) != ["a", "b", "verdict", "why"] or e.get("verdict") not in VERDICTS:
            problems.append(f"expect[{i}] needs a, b, verdict ({' or '.join(VERDICTS)}) and why")
            continue
        expects.append(Expectation(str(e["a"]), str(e["b"]), e["verdict"], str(e["why"])))
    if not expects:
        problems.append("no [[expect]] entry: a scenario states the verdicts it shows")
    if problems:
        raise XregInputError(f"scenario '{p}': " + "; ".join(problems) + ".")
    return Scenario(p, doc["title"].strip(), doc["summary"].strip(), flags, tuple(expects))


def argv(scenario: Scenario, overrides: list[str]) -> list[str]:
    """The scenario's flags as command-line words, leaving out every flag the user gives again."""
    given = {w.split("=", 1)[0] for w in overrides if w.startswith("--")}
    out: list[str] = []
    for key, value in scenario.flags.items():
        flag = "--" + key.replace("_", "-")
        if flag in given:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is True:
                out.append(flag)
            elif v is False:
                continue
            else:
                out += [flag, str(v)]
    return out + list(overrides)


def shipped() -> list[Path]:
    return sorted(ROOT.glob("*.toml")) if ROOT.is_dir() else []
