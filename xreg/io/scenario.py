"""Scenario files: one porting case each, as ``comparisons/NAME.toml``, runnable with
``xreg compare comparisons/NAME.toml`` (flags on the command line override the file's).

    title = "Adam + L2 is not AdamW"
    summary = "torch Adam(weight_decay) adds lam*w to the gradient; AdamW decays decoupled"
    [compare]                   # compare's flags by their long names (dashes or underscores)
    optimizer = "adam"
    convention = ["coupled", "decoupled"]
    [[expect]]                  # the verdict of one pair of runs, and why
    a = "torch/torch"
    b = "torch/decoupled"
    verdict = "mismatch"
    why = "..."

Nothing here runs anything or imports a framework.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xreg.core.checks import XregInputError
from xreg.semantics.conventions import canonical

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


MAX_BYTES = 1 << 20  # a scenario is a page of flags and expectations
# flags a shared scenario may not set: what is written, and where, and whether it replaces a file, is the
# user's to say on the command line; --list and --explain run no comparison
NOT_IN_A_SCENARIO = ("json", "plot", "report", "csv", "json_params", "force", "list", "explain")


def find(name: str) -> Path:
    """A scenario by path, or by the name of a shipped one (``classic_logistic``)."""
    p = Path(name)
    if p.suffix == ".toml" or p.exists():
        return p
    shipped_one = ROOT / f"{name}.toml"
    if shipped_one.is_file():
        return shipped_one
    names = ", ".join(q.stem for q in shipped())
    raise XregInputError(f"unknown command or scenario {name!r}; scenarios: {names} (a scenario file ends in .toml).")


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file: one ``XregInputError`` naming what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise XregInputError(f"scenario '{p}' does not exist or is not a file (xreg compare --list shows the shipped ones).")
    if p.stat().st_size > MAX_BYTES:
        raise XregInputError(f"scenario '{p}' has {p.stat().st_size} bytes; a scenario file has at most {MAX_BYTES}.")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise XregInputError(f"scenario '{p}' is not valid TOML: {exc}.") from None
    except RecursionError:
        raise XregInputError(f"scenario '{p}' nests its arrays or tables too deeply to be a scenario.") from None
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
    odd = sorted(k for k in flags if not re.fullmatch(r"[a-z][a-z0-9_-]*", k))
    if odd:  # a quoted key such as "json=/x.json" would pass as one flag word
        problems.append(f"flag names are words of a-z, 0-9, '-' and '_': {', '.join(map(repr, odd))}")
        flags = {k: v for k, v in flags.items() if k not in odd}
    refused = sorted(k for k in flags if k.replace("-", "_") in NOT_IN_A_SCENARIO)
    if refused:
        problems.append(f"it sets {', '.join('--' + k.replace('_', '-') for k in refused)}: outputs, --force, --list and "
                        "--explain are given on the command line, never by a shared file")  # fmt: skip
    flags = {k: _relative_to(p.parent, k, v) for k, v in flags.items()}
    expects = []
    listed = doc.get("expect", [])
    if not isinstance(listed, list):
        problems.append("'expect' must be a list of [[expect]] tables")
        listed = []
    for i, e in enumerate(listed):
        if not isinstance(e, dict) or sorted(e) != ["a", "b", "verdict", "why"] or e.get("verdict") not in VERDICTS:
            problems.append(f"expect[{i}] needs a, b, verdict ({' or '.join(VERDICTS)}) and why")
            continue
        if run_label(e["a"]) == run_label(e["b"]):
            problems.append(f"expect[{i}] pairs the run {e['a']} with itself")
            continue
        expects.append(Expectation(run_label(e["a"]), run_label(e["b"]), e["verdict"], str(e["why"])))
    if not expects:
        problems.append("no [[expect]] entry: a scenario states the verdicts it shows")
    if problems:
        raise XregInputError(f"scenario '{p}': " + "; ".join(problems) + ".")
    return Scenario(p, doc["title"].strip(), doc["summary"].strip(), flags, tuple(expects))


def run_label(label: Any) -> str:
    """A run's label as xreg prints it, its convention in today's spelling (``torch/torch`` is ``torch/coupled``)."""
    parts = str(label).split("/")
    if len(parts) < 2:
        return str(label)
    convention, suffix = re.match(r"([^@#]*)(.*)", parts[1]).groups()  # numpy/scratch@lam=109.6, torch/torch#2
    return "/".join(parts[:1] + [canonical(convention) + suffix] + parts[2:])


def _relative_to(folder: Path, key: str, value: Any) -> Any:
    """A file the scenario names (``data``, ``init_from``) is read beside the scenario, not from the cwd;
    a shipped dataset's name (``iris``) stays a name."""
    if key.replace("-", "_") not in ("data", "init_from") or not isinstance(value, str):
        return value
    path = Path(value)
    if path.is_absolute() or not (path.suffix or "/" in value):
        return value
    return str(folder / path)


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
