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
