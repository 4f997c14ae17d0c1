"""The loss's conventions: torch's forms (what every backend computes) and the forms a porter writes first.

torch (``--loss-reduction``, ``--class-weight``, ``--label-smoothing``; :func:`xreg.models.per_example_loss`):

* ``reduction='mean'`` divides the rows' summed loss by the rows, ``'sum'`` by 1;
* ``CrossEntropyLoss(weight=w)`` multiplies row i by ``w[y_i]`` and its mean divides by ``sum_i w[y_i]``;
* ``label_smoothing=eps`` targets ``(1-eps)`` on the label and ``eps/K`` on every class, each class's share
  weighted by its own ``w[k]``.

The naive forms (``--naive-loss CODE``, a JAX port's) are :data:`NAIVE`.
"""

from __future__ import annotations

from xreg.models import ROW_WEIGHTED, SMOOTH_K_MINUS_1
from xreg.semantics.naive import Difference, table

NAIVE: dict[str, Difference] = table(
    Difference(ROW_WEIGHTED, "the class-weighted mean divides by the rows N (optax, Keras: mean(loss * w[y])), where torch's "
              "CrossEntropyLoss(weight=w) divides by the sum of the rows' weights (and weights each class's smoothing share "
              "by its own weight)", "(optax.softmax_cross_entropy_with_integer_labels(z, y) * w[y]).mean()"),
    Difference(SMOOTH_K_MINUS_1, "label smoothing spread as eps/(K-1) over the other classes, where torch and "
              "optax.smooth_labels spread eps/K over every class", "(1-eps)*onehot + eps/(K-1)*(1 - onehot)"),
)  # fmt: skip
CODES: tuple[str, ...] = tuple(NAIVE)


def blocked(code: str, head: str, class_weight, label_smoothing: float, reduction: str = "mean") -> str | None:
    """Why the naive loss ``code`` does not change this run (None: it does)."""
    if head != "ce":
        return "it is CrossEntropyLoss's (the softmax head: --model softmax, or an mlp or cnn on more than 2 classes)"
    if code == ROW_WEIGHTED and (class_weight is None or all(w == 1.0 for w in class_weight)):
        return "the run has no class weights other than 1 (--class-weight)"
    if code == ROW_WEIGHTED and reduction == "sum" and not label_smoothing:
        return "with reduction 'sum' and no label smoothing both are sum_i w[y_i]*loss_i"
    if code == SMOOTH_K_MINUS_1 and not label_smoothing:
        return "the run has no label smoothing (--label-smoothing)"
    return None
