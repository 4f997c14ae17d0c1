"""Issue 21: the house's rules, as tests. Every optimizer's knowledge lives in its module under
``xreg/optimizers/``: no other module names one (a drifted copy printed invalid torch code before); every
registered optimizer implements every hook; the modules import one way, down the floors, with no circle."""

import ast
import collections
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from xreg import models, optimizers
from xreg.backends.numpy.run import Layout
from xreg.optimizers import base

PACKAGE = Path(optimizers.__file__).resolve().parents[1]
NAMES = {o.name for o in optimizers.OPTIMIZERS.values()} | {o.torch_class for o in optimizers.OPTIMIZERS.values()}
ALIASES = {o.naive_alias.rsplit(".", 1)[-1] for o in optimizers.OPTIMIZERS.values() if o.naive_alias}
# a torch class or an optax alias spelled out in a string: torch.optim.AdamW, optax.adamw(, optax.contrib.muon
SPELLED = re.compile(r"\b(?:torch\.optim\.|optax\.(?:contrib\.)?)(" + "|".join(sorted(NAMES | ALIASES, key=len, reverse=True)) + r")\b")


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def _docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                yield id(first.value)


def _named_optimizers(tree) -> list[tuple[int, str]]:
    """Every string literal (docstrings aside) that is an optimizer's name, or says ``torch.optim.<Class>``."""
    docs = set(_docstrings(tree))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            v = node.value
            if v in NAMES or v.lower() in NAMES or SPELLED.search(v):
                out.append((node.lineno, v))
    return out


def test_no_module_outside_the_optimizers_names_an_optimizer():
    found = {str(p.relative_to(PACKAGE)): hits for p, tree in _sources()
             if "optimizers" not in p.relative_to(PACKAGE).parts[:1] and (hits := _named_optimizers(tree))}  # fmt: skip
    assert found == {}


def test_the_guard_sees_a_planted_name():
    assert _named_optimizers(ast.parse('x = 1\nif name == "adamw":\n    pass\n')) == [(2, "adamw")]
    assert _named_optimizers(ast.parse('code = f"torch.optim.SGD({lr})"')) == [(1, "torch.optim.SGD(")]
    assert _named_optimizers(ast.parse('x = "as optax.adamw does"')) == [(1, "as optax.adamw does")]
    assert _named_optimizers(ast.parse('"""Adam and SGD are named in prose."""')) == []


HOOKS = ("reference", "direction", "naive", "naive_cause", "option_causes", "recorded", "sum_loss", "decoupled_alias",
         "flags", "momentum_free", "plain")  # fmt: skip


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_every_optimizer_implements_every_hook(name):
    opt = optimizers.get(name)
    assert opt.naive is not base._no_naive and opt.formula and opt.formula in " ".join(inspect.getmodule(opt.direction).__doc__.split())
    for hook in HOOKS:
        assert callable(getattr(opt, hook)), hook
    options = opt.resolve({})
    flags = dict(opt.structure_flags(options))
    assert isinstance(opt.option_causes(options), list) and isinstance(opt.recorded(options, {}), dict)
    layout = Layout(models.architecture("logistic", 4, 2).shapes)
    theta = np.linspace(-1.0, 1.0, layout.size)
    ref = opt.reference(opt.hparams(options), flags, theta, layout)
    assert ref.step(theta, np.full_like(theta, 0.1), opt.default_lr, 1).shape == theta.shape
    for fn in opt.twins:
        assert getattr(__import__("xreg.twins").twins, fn.__name__) is fn  # importable where printed code finds it


def test_the_registry_is_in_table_order_and_finds_every_module():
    modules = {p.stem for p in (PACKAGE / "optimizers").glob("*.py") if not p.stem.startswith("_") and p.stem not in ("base", "link")}
    found = {inspect.getmodule(o.direction).__name__.rsplit(".", 1)[-1] for o in optimizers.OPTIMIZERS.values()}
    assert found == modules
    orders = [o.order for o in optimizers.OPTIMIZERS.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


# ---- the floors: which part of the package may import which ----------------------------------------------
FLOORS = {  # a module may import (at its top or inside a function) only from its own floor or below;
    # core.checks (the one error shape) is the floor every module stands on
    "xreg.core.checks": 0, "xreg.optimizers": 1, "xreg.semantics": 1, "xreg.schedules": 1, "xreg.models": 1, "xreg.core": 2, "xreg.io": 3,
    "xreg.record": 3, "xreg.backends": 4, "xreg.twins": 4, "xreg.analysis": 5, "xreg.translate": 5,
    "xreg.testing": 6, "xreg.report": 6, "xreg.cli": 7, "xreg._main": 8, "xreg.__main__": 9, "xreg": 9,
}  # fmt: skip


def _floor(module: str) -> int:
    """The floor of the longest prefix of ``module`` the table names."""
    return max(((len(p), f) for p, f in FLOORS.items() if module == p or module.startswith(p + ".")))[1]


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports():
    """(module, imported module, at the top?) for every import of xreg inside xreg."""
    modules = {_module_of(p) for p, _ in _sources()}
    for path, tree in _sources():
        me, top = _module_of(path), {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "xreg":
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in names if t in modules] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "xreg"]
            else:
                continue
            for t in targets:
                if t != me and t != "xreg":
                    yield me, t, id(node) in top


def test_no_import_runs_back_up_the_floors():
    up = sorted(f"{a} -> {b}" for a, b, _ in _imports() if _floor(b) > _floor(a))
    assert up == []


def test_no_import_circle():
    graph = collections.defaultdict(set)
    for a, b, top in _imports():
        if top:
            graph[a].add(b)
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_importing_an_optimizer_module_imports_no_framework():
    import subprocess
    import sys

    code = ("import sys, xreg.optimizers, xreg.twins as _; "
            "print(sorted(m for m in ('torch', 'jax', 'optax', 'keras', 'flax') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code.replace(", xreg.twins as _", "")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_coupled_convention_keeps_its_old_spelling(capsys, tmp_path):
    """'torch' named the coupled convention until issue 21 (runs labelled torch/torch): the flag, a spec and a
    scenario's expected pairs still take it; every label says 'coupled'."""
    import json

    from xreg.cli import main
    from xreg.core.spec import ExperimentSpec
    from xreg.io import scenario

    assert ExperimentSpec(convention="torch").convention == "coupled"
    assert main(["--convention", "torch", "--backend", "numpy", "--backend", "torch", "--epochs", "3", "--json", "-"]) == 0
    labels = {r["label"] for r in json.loads(capsys.readouterr().out)["runs"]}
    assert labels == {"numpy/coupled", "torch/coupled"}
    toml = tmp_path / "old.toml"
    toml.write_text('title = "t"\nsummary = "s"\n[compare]\nepochs = 3\n[[expect]]\na = "torch/torch"\nb = "jax/torch/naive"\nverdict = "match"\nwhy = "w"\n')
    (e,) = scenario.load(toml).expect
    assert (e.a, e.b) == ("torch/coupled", "jax/coupled/naive")


def test_no_function_runs_over_sixty_lines():
    """A function past 60 lines holds more than one idea (issue 21 split the nine there were)."""
    long = sorted(f"{p.relative_to(PACKAGE)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)" for p, tree in _sources()
                  for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60)  # fmt: skip
    assert long == []
