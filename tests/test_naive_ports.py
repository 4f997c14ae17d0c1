"""Issue 3: the naive optax port of each optimizer, run beside torch: mismatch with its cause named,
or a match where the stock alias is exact (and then no cause is given)."""

import pytest

from helpers import max_gap, train_all
from test_optimizers import CASES, _spec
from xreg.analysis import compare
from xreg.analysis.runs import naive_cause

NAIVE = ["sgd", "sgd-dampening(0.5)", "adam", "adam-amsgrad", "adam-decoupled", "adamw", "adamw-amsgrad",
         "rmsprop", "rmsprop-centered-momentum", "adagrad", "adagrad-lr_decay-init", "adamax", "nadam",
         "nadam-decoupled", "radam", "radam-decoupled", "adadelta", "asgd"]  # fmt: skip
EXACT_ALIASES = {"sgd", "adam-decoupled", "adamw", "adamax"}  # no cause: the alias is the torch rule
CAUSE_WORDS = {  # a word the named cause must contain
    "sgd-dampening(0.5)": "dampening", "adam": "decoupled", "adam-amsgrad": "max", "adamw-amsgrad": "max",
    "rmsprop": "eps_in_sqrt", "rmsprop-centered-momentum": "decay=0.9", "adagrad": "0.1",
    "adagrad-lr_decay-init": "lr_decay", "nadam": "Dozat", "nadam-decoupled": "Dozat", "radam": "rho_t",
    "radam-decoupled": "rho_t", "adadelta": "None", "asgd": "ASGD",
}  # fmt: skip


@pytest.mark.parametrize("case", NAIVE)
def test_naive_port_verdict_and_cause(case, default_data):
    spec = _spec(CASES[case])
    runs = train_all(spec, default_data, [("torch", spec.convention), ("jax", spec.convention, "naive")])
    ref, naive = runs[f"torch/{spec.convention}"], runs[f"jax/{spec.convention}/naive"]
    pair = compare.compare_pair(ref, naive)
    cause = naive_cause(spec, default_data)
    if case in EXACT_ALIASES:
        assert cause is None and pair.verdict == "match" and max_gap(ref, naive) <= 1e-12
    else:
        assert pair.verdict == "mismatch", (case, pair.max_abs_diff)
        assert CAUSE_WORDS[case] in cause


def test_naive_adamw_without_mask_decays_the_bias(default_data):
    spec = _spec(CASES["adamw"], no_decay=("bias",))
    runs = train_all(spec, default_data, [("torch", "decoupled"), ("jax", "decoupled", "naive")])
    assert compare.compare_pair(*runs.values()).verdict == "mismatch"
    assert "mask" in naive_cause(spec, default_data)


def test_naive_adadelta_climbs_and_is_reported_as_diverged_or_far(default_data):
    spec = _spec(CASES["adadelta"])
    runs = train_all(spec, default_data, [("torch", "torch"), ("jax", "torch", "naive")])
    ref, naive = runs["torch/torch"], runs["jax/torch/naive"]
    # optax.adadelta() without a learning rate performs gradient *ascent*: the loss goes up
    assert naive.loss[-1] > naive.loss[0] > ref.loss[-1]


def test_naive_port_needs_jax_and_a_torch_convention(default_data):
    from xreg.checks import XregInputError
    from xreg.analysis.runs import RunRequest

    with pytest.raises(XregInputError, match="use backend 'jax'"):
        RunRequest("torch", "torch", port="naive").spec_for(_spec(CASES["adam"]))
    with pytest.raises(XregInputError, match="use convention 'torch'"):
        RunRequest("jax", "scratch", port="naive").spec_for(_spec(CASES["rmsprop"]))
