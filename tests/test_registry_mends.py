"""Issue 21, the review's findings on the new registry, each a test that failed before its mend: Rprop (no
weight_decay) through every face, the 'torch' alias wherever a convention is named, a two-class rule in a
recorded meta, ASGD's coupled and decoupled decays as two rules."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xreg.analysis import diagnose, runs
from xreg.cli import main
from xreg.core.checks import XregInputError
from xreg.core.spec import ExperimentSpec
from xreg.io import scenario
from xreg.translate import translate


def test_rprop_naive_port_runs_beside_torch_in_its_own_convention(capsys):
    assert main(["--optimizer", "rprop", "--naive", "--epochs", "20", "--json", "-"]) == 1  # the port drifts: a mismatch
    doc = json.loads(capsys.readouterr().out)
    labels = [r["label"] for r in doc["runs"]]
    assert "jax/l2-loss/naive" in labels and "torch/l2-loss" in labels
    pair = next(p for p in doc["pairs"] if {p["a"], p["b"]} == {"torch/l2-loss", "jax/l2-loss/naive"})
    assert pair["verdict"] == "mismatch"


def test_a_coupled_group_decay_on_rprop_is_refused():
    with pytest.raises(XregInputError, match="takes no weight_decay"):
        ExperimentSpec(optimizer="rprop", convention="coupled", lam=0.0, group_decay=(("weight", 0.5),))


def test_rprops_l2_run_says_it_has_no_weight_decay(capsys):
    assert main(["--optimizer", "rprop", "--convention", "l2-loss", "--backend", "numpy", "--epochs", "5", "--json", "-"]) == 0
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert run["equivalent_torch_weight_decay"] is None and "takes no weight_decay" in run["equivalence"]


def test_rprop_translates_without_a_decay():
    t = translate("torch.rprop", lr=0.01, rows=100, batch_size=10)
    assert not t.decoupled and "decay_rates" not in t.optax_code and "weight_decay" not in t.torch_code
    assert t.sum_loss_settings == {"weight_decay": 0.0, "lr": 0.01}  # it reads signs only: a summed loss steps alike


def test_the_rprop_twin_steps_without_params():
    import xreg.twins

    with jax.enable_x64(True):
        tx = xreg.twins.scale_by_torch_rprop(0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0))
        g = {"w": jnp.array([1.0, -2.0])}
        d, _ = tx.update(g, tx.init(g))
        np.testing.assert_array_equal(np.asarray(d["w"]), [0.01, -0.01])


def test_the_old_convention_name_in_labels_and_flags():
    assert scenario.run_label("torch/torch#2") == "torch/coupled#2"
    assert scenario.run_label("numpy/torch@lam=109.6") == "numpy/coupled@lam=109.6"
    reqs = runs.requests_from(ExperimentSpec(), (1096,), None, ["numpy"], ["torch", "coupled"])
    assert [(r.backend, r.convention) for r in reqs] == [("numpy", "coupled")]


def test_a_muon_meta_states_no_single_rule():
    meta = {"framework": "torch", "optimizer": "Muon", "groups": [{"params": ["weight"], "lr": 0.02, "weight_decay": 0.1}]}
    assert diagnose.rule_from_meta(meta, {"weight": "weight"}, None, 3) is None


def test_asgd_coupled_and_decoupled_are_two_rules():
    t = translate("torch.asgd", lr=0.05, weight_decay=1e-2)
    assert t.decoupled_rate.startswith("no exact equivalent")


def test_rprops_translation_and_report_say_it_has_no_weight_decay(capsys, tmp_path):
    t = translate("torch.rprop")
    assert "has no weight_decay" in t.decoupled_rate and not any("rescaled" in x for x in t.no_exact_equivalent)
    report = tmp_path / "r.md"
    assert main(["--optimizer", "rprop", "--epochs", "5", "--backend", "numpy", "--report", str(report)]) == 0
    assert "a line of the loop (w <- w - lr*lam*w before each step)" in report.read_text()
