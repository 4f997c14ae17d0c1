"""Datasets: the embedded default, a user's numeric CSV, and the deterministic train/test split.

Split rule (no random numbers, so it is the same on every machine): with test fraction ``f``, row ``i``
(0-based, file order) goes to the test split when ``floor((i+1)*f) > floor(i*f)``, i.e. rows are
interleaved evenly and ``floor(n*f)`` of them are test rows. ``f = 0.2`` puts rows 4, 9, 14, ... in the
test split; ``f = 0`` trains on every row.
"""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path

import numpy as np

from xreg.checks import XregInputError, check_float
from xreg.spec import Dataset

DEFAULT_NAME = "default"
DEFAULT_TARGET = "class"
DEFAULT_TEST_FRACTION = 0.2
MAX_FEATURES = 1000


def test_mask(n_rows: int, test_fraction: float) -> np.ndarray:
    """Boolean mask of the test rows under the interleaved split rule above."""
    f = check_float("test_fraction", test_fraction, 0.0, 1.0, closed="left")
    i = np.arange(n_rows)
    return np.floor((i + 1) * f) > np.floor(i * f)


def split(name: str, X: np.ndarray, y: np.ndarray, names: tuple[str, ...], target: str, test_fraction: float) -> Dataset:
    mask = test_mask(len(y), test_fraction)
    return Dataset(name, X[~mask], y[~mask], X[mask], y[mask], names, target)


def read_csv(path: str | Path, target: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a numeric CSV with a header: the ``target`` column is y, every other column a feature."""
    path = Path(path)
    if not path.is_file():
        raise XregInputError(f"The data file '{path}' does not exist or is not a file.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's BOM is dropped
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise XregInputError(f"The data file '{path}' is not a readable text CSV ({exc}).") from None
    if not rows:
        raise XregInputError(f"The data file '{path}' is empty.")
    header = [h.strip() for h in rows[0]]
    if len(rows) == 1:
        raise XregInputError(f"The data file '{path}' has a header but no data rows.")
    if target not in header:
        raise XregInputError(
            f"The target column '{target}' is not in '{path}'. Columns: {', '.join(header)}."
        )
    if len(set(header)) != len(header):
        raise XregInputError(f"The header of '{path}' repeats a column name: {', '.join(header)}.")
    values = np.empty((len(rows) - 1, len(header)))
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise XregInputError(
                f"Line {line} of '{path}' has {len(row)} fields; the header has {len(header)}."
            )
        for c, cell in enumerate(row):
            try:
                v = float(cell)
            except ValueError:
                raise XregInputError(
                    f"Non-numeric value {cell.strip()!r} in column '{header[c]}' at line {line} of '{path}'."
                ) from None
            if not math.isfinite(v):
                raise XregInputError(
                    f"Column '{header[c]}' holds {cell.strip()!r} at line {line} of '{path}'; "
                    "values must be finite (no NaN or inf)."
                )
            values[r, c] = v
    t = header.index(target)
    features = tuple(h for i, h in enumerate(header) if i != t)
    if not features:
        raise XregInputError(f"The data file '{path}' has no feature columns besides '{target}'.")
    return np.delete(values, t, axis=1), values[:, t], features


def prepare_labels(y: np.ndarray, model: str, map_labels: bool) -> np.ndarray:
    """Logistic labels must be 0/1; with ``map_labels`` two classes map to 0 (smaller) and 1 (larger)."""
    if model != "logistic":
        return y
    classes = np.unique(y)
    if len(classes) == 1:
        raise XregInputError(
            f"The labels hold one class only ({classes[0]:g}); logistic regression needs two classes."
        )
    if len(classes) > 2:
        shown = ", ".join(f"{c:g}" for c in classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise XregInputError(
            f"The logistic model needs two classes; the labels hold {len(classes)}: {{{shown}}}."
        )
    if set(classes) == {0.0, 1.0}:
        return y
    lo, hi = classes
    if not map_labels:
        raise XregInputError(
            f"The logistic model needs 0/1 labels; got {{{lo:g}, {hi:g}}}. "
            f"Pass --map-labels to map {lo:g} -> 0 and {hi:g} -> 1."
        )
    return (y == hi).astype(float)


def load_csv(
    path: str | Path,
    target: str,
    *,
    model: str = "logistic",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    map_labels: bool = False,
    max_features: int | None = MAX_FEATURES,
) -> Dataset:
    X, y, names = read_csv(path, target)
    if max_features is not None and X.shape[1] > max_features:
        raise XregInputError(
            f"'{path}' has {X.shape[1]} feature columns, more than the limit of {max_features}; "
            "pass --allow-many-features if this is intended."
        )
    y = prepare_labels(y, model, map_labels)
    data = split(Path(path).name, X, y, names, target, test_fraction)
    if model == "logistic" and len(np.unique(data.y_train)) < 2:
        raise XregInputError("The training split holds one class only; logistic regression needs two.")
    return data


def default_dataset(test_fraction: float = DEFAULT_TEST_FRACTION) -> Dataset:
    """The embedded default: 1370 rows x 4 features, 0/1 labels; 1096 train + 274 test at f=0.2."""
    ref = resources.files("xreg") / "data" / "default.csv"
    with resources.as_file(ref) as path:
        X, y, names = read_csv(path, DEFAULT_TARGET)
    return split(DEFAULT_NAME, X, y, names, DEFAULT_TARGET, test_fraction)
