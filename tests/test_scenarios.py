"""Issue 10, scenarios: every comparisons/*.toml runs and shows the verdicts it states, with why."""

import csv

import pytest

from xreg.cli import main
from xreg.io import scenario

pytestmark = pytest.mark.slow  # the full tier only (pytest -m 'not slow' is the fast one)

SCENARIOS = scenario.shipped()


def test_the_scenarios_the_issue_names_are_shipped():
    names = {p.stem for p in SCENARIOS}
    assert {"worked_example", "classic_logistic", "bias_masked", "minibatch_scratch", "sgd_momentum_coupled_vs_decoupled",
            "adam_l2_vs_adamw", "schedule_decoupled_scale", "float32", "naive_rmsprop", "naive_adagrad", "naive_nadam",
            "chaotic_rmsprop", "mlp_no_decay_bias", "naive_adafactor", "naive_muon",
            "warmup_cosine", "steplr_staircase", "epoch_schedule_step_count", "clip_eps", "class_weight_mean",
            "adam_resume_step_count"} <= names  # fmt: skip


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_shows_its_expected_verdicts(path, capsys, monkeypatch):
    monkeypatch.chdir(scenario.ROOT.parent)  # the files name their data relative to the repository
    code = main(["compare", str(path), "--format", "csv"])  # csv: the chaotic case's gap read back below
    out = capsys.readouterr().out
    lines = out[out.index("expected verdicts:"):].splitlines()[1:]
    expected = scenario.load(path).expect
    assert [line.split()[0] for line in lines[: len(expected)]] == ["ok"] * len(expected), out
    assert code == 0
    if path.stem == "chaotic_rmsprop":  # the gap between the frameworks is within torch's own floor
        row = next(r for r in csv.reader(out.splitlines()) if r and r[0] == "jax/coupled")
        gap = float(row[6])
        assert row[7] == "round-off (chaotic)"
        floor = float(out.split("torch against itself")[1].split(", by ")[1].split()[0])
        assert 1e-8 < gap <= floor, (gap, floor)


def test_list_overrides_and_bad_files(tmp_path, capsys, monkeypatch):
    assert main(["compare", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(p.stem in out for p in SCENARIOS)
    monkeypatch.chdir(scenario.ROOT.parent)
    # a flag on the command line overrides the file's: lam 0 makes scratch and torch the same rule
    assert main(["compare", str(scenario.ROOT / "worked_example.toml"), "--lam", "0"]) == 1
    out = capsys.readouterr().out
    assert "lam=0," in out and "FAIL" in out.split("expected verdicts:")[1]
    # an override that drops a run the file expects is bad input, before anything runs
    assert main(["compare", str(scenario.ROOT / "worked_example.toml"), "--convention", "torch"]) == 2
    assert "names the pair" in capsys.readouterr().err
    for text, message in (("title = 1\n", "'title' must be a non-empty string"),
                          ("title = 't'\nsummary = 's'\n", "no [[expect]] entry"),
                          ("title = 't'\nsummary = 's'\n[[expect]]\na = 'x'\nb = 'y'\nverdict = 'same'\nwhy = ''\n", "verdict (match or mismatch or round-off (chaotic))"),
                          ("title = [\n", "not valid TOML")):  # fmt: skip
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        assert main(["compare", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert main(["compare", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_readme_lists_every_scenario():
    readme = (scenario.ROOT.parent / "README.md").read_text()
    for p in SCENARIOS:
        assert f"[`{p.stem}`](comparisons/{p.name})" in readme, p.stem
