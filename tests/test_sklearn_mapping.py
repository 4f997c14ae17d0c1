"""conventions.torch_weight_decay_from_sklearn_C, checked against scikit-learn itself: gradient descent
with weight_decay = 1/(C*n) on the weight and none on the bias reaches LogisticRegression(C)'s optimum."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from xreg import backends
from xreg.semantics import conventions
from xreg.core.spec import ExperimentSpec


@pytest.mark.parametrize("C", [0.01, 0.05])
def test_sklearn_C_is_weight_decay_one_over_C_n(C, default_data):
    n = default_data.n_train
    clf = LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=10_000).fit(default_data.X_train,
                                                                                   default_data.y_train)  # fmt: skip
    wd = conventions.torch_weight_decay_from_sklearn_C(C, n)
    assert conventions.sklearn_C_from_torch_weight_decay(wd, n) == pytest.approx(C)
    spec = ExperimentSpec(lr=0.05, lam=wd, no_decay=("bias",), epochs=6000, options={"momentum": 0.9})
    t = backends.train("numpy", spec, default_data)
    final = t.final_params
    np.testing.assert_allclose(final["weight"], clf.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(final["bias"], clf.intercept_, rtol=0, atol=1e-6)
    # and the bias really is unpenalized there: decaying it too lands elsewhere
    t_b = backends.train("numpy", spec.replace(no_decay=()), default_data)
    assert np.max(np.abs(t_b.final_params["bias"] - clf.intercept_)) > 1e-3


# ---- issue 9: ground truth for the mapping, with and without a penalized intercept, on two datasets ----
from xreg import models  # noqa: E402
from xreg.analysis.optimum import GRAD_NORM, optimum  # noqa: E402

SOLVERS = {  # bias decayed? -> scikit-learn's estimator for that objective
    False: lambda C: LogisticRegression(C=C, solver="lbfgs", tol=1e-12, max_iter=100_000),
    True: lambda C: LogisticRegression(C=C, solver="liblinear", intercept_scaling=1.0, tol=1e-12, max_iter=100_000),
}


@pytest.fixture(scope="module")
def two_datasets(default_data, user_csv):
    from xreg.io import data

    return {"default": default_data, "user": data.load(str(user_csv), "label", standardize=True)}


@pytest.mark.parametrize("which", ["default", "user"])
@pytest.mark.parametrize("bias_decayed", [False, True], ids=["intercept-free", "intercept-penalized"])
def test_the_C_mapping_converges_to_sklearns_coefficients(two_datasets, which, bias_decayed):
    ds = two_datasets[which]
    C, n = 0.05, ds.n_train
    clf = SOLVERS[bias_decayed](C).fit(ds.X_train, ds.y_train)
    wd = conventions.torch_weight_decay_from_sklearn_C(C, n)
    # SciPy L-BFGS on the exact objective: scikit-learn's optimum
    opt = optimum(models.architecture("logistic", ds.n_features, 2), ds.X_train, ds.y_train, {"weight": wd, "bias": wd if bias_decayed else 0.0})
    assert opt.grad_norm <= GRAD_NORM
    np.testing.assert_allclose(opt.params["weight"], clf.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(opt.params["bias"], clf.intercept_, rtol=0, atol=1e-6)
    # and a torch-convention run with weight_decay = 1/(C*n) gets there
    spec = ExperimentSpec(lr=0.05, lam=wd, no_decay=() if bias_decayed else ("bias",), epochs=6000, options={"momentum": 0.9})
    final = backends.train("numpy", spec, ds).final_params
    np.testing.assert_allclose(final["weight"], clf.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(final["bias"], clf.intercept_, rtol=0, atol=1e-6)


def test_reference_optimum_in_compare(tmp_path, capsys):
    from xreg.cli import main

    out = tmp_path / "c.json"
    main(["--epochs", "200", "--optimizer", "adam", "--lr", "0.05", "--convention", "torch", "--convention", "decoupled",
          "--backend", "numpy", "--reference", "optimum", "--json", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert "distance to the optimum of each run's own objective" in text
    import json

    refs = {r["run"]: r for r in json.loads(out.read_text())["reference_optimum"]}
    assert refs["numpy/coupled"]["distance"] < 1e-3  # Adam + L2 after 200 epochs: near its objective's optimum
    assert refs["numpy/decoupled"]["distance"] is None and "minimises no L2-regularized objective" in refs["numpy/decoupled"]["note"]
