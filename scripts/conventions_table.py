"""Print the README's per-optimizer conventions table (Markdown) from the code that runs the chains.

    .venv/bin/python scripts/conventions_table.py            # print it
    .venv/bin/python scripts/conventions_table.py --write    # replace it in README.md

tests/test_explain.py fails when README.md and this output drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xreg.cli import explain
from xreg import optimizers

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- optimizer-table:begin -->", "<!-- optimizer-table:end -->"


def table() -> str:
    rows = [
        f"`--optimizer`: {' '.join(f'`{n}`' for n in optimizers.OPTIMIZERS)}",
        "",
        f"(torch defaults, weight_decay = lam = {explain.EXAMPLE_LAM:g}; `xreg explain NAME` prints one row in full)",
        "",
        "| torch | update (g includes weight decay unless decoupled) | exact optax chain | naive port | what the naive port gets wrong |",
        "|---|---|---|---|---|",
    ]
    for name, opt in optimizers.OPTIMIZERS.items():
        exact, naive, cause = explain.chains(name)
        cells = [f"`{opt.torch_class}`", opt.formula, f"`{exact}`", f"`{naive}`", cause or "nothing: exact"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        README.write_text(readme_with_table(README.read_text()))
    else:
        print(table())
