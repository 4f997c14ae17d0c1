"""Datasets: the embedded default, scikit-learn's shipped datasets, a user's numeric CSV, the
deterministic train/test split and the optional standardization.

Split rule (no random numbers, so it is the same on every machine): with test fraction ``f``, row ``i``
(0-based, file order) goes to the test split when ``floor((i+1)*f) > floor(i*f)``, i.e. rows are
interleaved evenly and ``floor(n*f)`` of them are test rows. ``f = 0.2`` puts rows 4, 9, 14, ... in the
test split; ``f = 0`` trains on every row. ``standardize`` centres and scales every feature with the
mean and standard deviation of the *training* split (a constant feature is only centred), applied to both.

Labels: ``linear`` takes any real target; ``logistic`` two classes 0/1; ``softmax`` and ``mlp`` classes
0..K-1. ``map_labels`` sends the sorted distinct labels to 0, 1, ..., K-1.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from xreg.core.checks import XregInputError, check_float, is_number
from xreg.core.spec import Dataset

SKLEARN_DATASETS = ("digits", "iris", "wine", "breast_cancer")
DEFAULT_NAME = "default"
DEFAULT_TARGET = "class"
DEFAULT_TEST_FRACTION = 0.2
MAX_FEATURES = 1000
_PLAIN = set("0123456789+-.eE")  # every character of a plain ASCII number


def test_mask(n_rows: int, test_fraction: float) -> np.ndarray:
    """Boolean mask of the test rows under the interleaved split rule above."""
    f = check_float("test_fraction", test_fraction, 0.0, 1.0, closed="left")
    i = np.arange(n_rows)
    return np.floor((i + 1) * f) > np.floor(i * f)


def split(name: str, X: np.ndarray, y: np.ndarray, names: tuple[str, ...], target: str, test_fraction: float) -> Dataset:
    mask = test_mask(len(y), test_fraction)
    return Dataset(name, X[~mask], y[~mask], X[mask], y[mask], names, target)


def _cells(path: Path, delimiter: str) -> tuple[list[int], np.ndarray]:
    """Non-blank lines of a text CSV as a 2-D array of stripped strings, with their 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's BOM is dropped
    except UnicodeDecodeError as exc:
        raise XregInputError(f"The data file '{path}' is not a readable text CSV ({exc}).") from None
    numbered = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not numbered:
        raise XregInputError(f"The data file '{path}' is empty.")
    import csv

    lines = [line for _, line in numbered]
    _check_text_size(path, lines, delimiter)
    try:  # the csv module, row by row: numpy's loadtxt preallocates 50000 rows of objects (37 GiB at 100k columns)
        rows = list(csv.reader(lines, delimiter=delimiter, quotechar='"'))
    except csv.Error as exc:
        raise XregInputError(f"The data file '{path}' is not a readable CSV ({exc}).") from None
    width = len(rows[0])
    for (number, _), row in zip(numbered[1:], rows[1:]):
        if len(row) != width:
            raise XregInputError(f"Line {number} of '{path}' has {len(row)} fields; the header has {width}.")
    cells = np.array(rows, dtype=str).reshape(len(rows), width)
    return [n for n, _ in numbered], np.char.strip(cells)


MAX_TEXT_BYTES = 4 * 2**30  # the cells held as text while a CSV is read: as Python strings, then as a numpy array
STR_BYTES = 56  # a short Python str (the csv module's cells) beyond its characters
SHOWN_CHARS = 40  # of a bad cell, in an error


def _cell(text: str) -> str:
    text = str(text)
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...") + (f" ({len(text)} characters)" if len(text) > SHOWN_CHARS else "")


MISSING = ("", "nan", "na", "null", "none")  # cells that hold no value (compared in lower case)


def _missing(cells: np.ndarray) -> np.ndarray:
    return np.isin(np.char.lower(cells), MISSING)


def _check_text_size(path: Path, lines: Sequence[str], delimiter: str) -> None:
    """Refuse, before any cell is made, a file whose cells would take more than MAX_TEXT_BYTES as text."""
    cells, longest = 0, 0
    for line in lines:
        fields = line.split(delimiter)
        cells += len(fields)
        longest = max(longest, max(map(len, fields)))
        if cells * (longest * 4 + STR_BYTES) > MAX_TEXT_BYTES:
            raise XregInputError(f"The data file '{path}' is too large to read: {cells:.3g}+ cells of up to {longest} "
                                 f"characters need more than {MAX_TEXT_BYTES / 2**30:g} GiB as text.")  # fmt: skip


def _header(path: Path, cells: np.ndarray, target: str, drop: Sequence[str]) -> list[str]:
    """The header row, checked: more than one column (else a hint at the delimiter), every column named and
    once, data rows after it, the target and the dropped columns in it."""
    header = [str(h) for h in cells[0]]
    if len(header) == 1:
        for other in (";", "\t", "|"):
            if other in header[0]:
                shown = "\\t" if other == "\t" else other
                raise XregInputError(f"The header of '{path}' is one column, {_cell(header[0])}: the file looks "
                                     f"'{shown}'-separated; pass --delimiter '{shown}'.")  # fmt: skip
    unnamed = [i + 1 for i, h in enumerate(header) if not h]
    if unnamed:
        raise XregInputError(f"Column {unnamed[0]} of '{path}' has no name (a pandas index, written by to_csv without "
                             "index=False?): name it and --drop it, or write the file with index=False.")  # fmt: skip
    if len(cells) == 1:
        raise XregInputError(f"The data file '{path}' has a header but no data rows.")
    if len(set(header)) != len(header):
        raise XregInputError(f"The header of '{path}' repeats a column name: {', '.join(header)}.")
    for name in [target, *drop]:
        if name not in header:
            what = "target column" if name == target else "column to drop"
            raise XregInputError(f"The {what} '{name}' is not in '{path}'. Columns: {', '.join(header)}.")
    return header


def _first_bad_cell(path: Path, numeric: np.ndarray, names: Sequence[str], rows: Sequence[int], label_column: int,
                    drop_missing: bool) -> None:  # fmt: skip
    """Raise for the first cell, in file order, that is not a plain finite number."""
    hint = "; --drop-missing drops rows with an empty or NaN cell" if not drop_missing else ""
    for (r, c), cell in np.ndenumerate(numeric):  # the first bad cell, in file order
        try:
            if not is_number(str(cell)):
                raise ValueError(cell)
            v = float(cell)
        except ValueError:
            label_hint = ("; pass --map-labels to map text labels to 0..K-1" if c == label_column else "") + (hint if cell == "" else "")
            raise XregInputError(
                f"Non-numeric value {_cell(cell)} in column '{names[c]}' at line {rows[r]} of '{path}'{label_hint}."
            ) from None
        if not math.isfinite(v):
            raise XregInputError(
                f"Column '{names[c]}' holds {_cell(cell)} at line {rows[r]} of '{path}'; "
                f"values must be finite (no NaN or inf){hint if math.isnan(v) else ''}."
            )


def read_csv(
    path: str | Path, target: str, *, delimiter: str = ",", drop: Sequence[str] = (), map_labels: bool = False,
    drop_missing: bool = False,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a numeric CSV with a header (via ``numpy.loadtxt``): the ``target`` column is y, every
    other column not in ``drop`` a feature (dropped columns are never converted: they may hold text).
    A target of text labels is kept as text where ``map_labels`` (mapped later); ``drop_missing`` drops
    every row with an empty or NaN cell in a kept column."""
    path = Path(path)
    if not path.is_file():
        raise XregInputError(f"The data file '{path}' does not exist or is not a file.")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\n\r":
        raise XregInputError(f"The delimiter must be one character (not a quote or newline). Got {delimiter!r} instead.")
    numbers, cells = _cells(path, delimiter)
    header = _header(path, cells, target, drop)
    t = header.index(target)
    keep = [i for i, h in enumerate(header) if i != t and h not in drop]
    if not keep:
        raise XregInputError(f"The data file '{path}' has no feature columns besides '{target}'.")
    body = cells[1:][:, keep + [t]]  # the dropped columns are not read
    names = [header[i] for i in keep] + [target]
    rows = list(numbers[1:])
    if drop_missing:
        missing = np.any(_missing(body), axis=1)
        if np.all(missing):
            raise XregInputError(f"Every row of '{path}' has a missing value: --drop-missing leaves none.")
        body, rows = body[~missing], [r for r, m in zip(rows, missing) if not m]
    labels = body[:, -1]
    text_labels = map_labels and not all(is_number(str(c)) and set(str(c)) <= _PLAIN for c in labels)
    if text_labels:  # an empty or missing label is no class of its own
        gone = np.flatnonzero(_missing(labels))
        if gone.size:
            raise XregInputError(f"The label at line {rows[gone[0]]} of '{path}' is {_cell(labels[gone[0]])}: missing, not a "
                                 "class; --drop-missing drops such rows.")  # fmt: skip
    numeric = body[:, :-1] if text_labels else body
    try:
        values = numeric.astype(np.float64)
    except ValueError:
        values = None
    plain = values is not None and set("".join(numeric.ravel().tolist())) <= _PLAIN  # ASCII digits: no '1_00', no '١'
    if not plain or not np.all(np.isfinite(values)):
        _first_bad_cell(path, numeric, names, rows, len(keep), drop_missing)
    if text_labels:
        return values, np.asarray(labels, dtype=str), tuple(names[:-1])
    return values[:, :-1], values[:, -1], tuple(names[:-1])


def _shown(values: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")


def prepare_labels(y: np.ndarray, model: str, map_labels: bool) -> np.ndarray:
    """Class labels for the classifiers: 0/1 (logistic) or 0..K-1 (softmax, mlp); ``map_labels`` maps
    the sorted distinct values there. The linear model keeps any real target."""
    if y.dtype.kind in "US":  # text labels (read with --map-labels): the sorted distinct texts become 0..K-1
        if model == "linear":
            raise XregInputError("The linear model needs a numeric target; the labels are text.")
        classes = np.unique(y)
        if len(classes) == 1:
            raise XregInputError(f"The labels hold one class only ({classes[0]!r}); the {model} model needs at least two classes.")
        if model == "logistic" and len(classes) > 2:
            raise XregInputError(f"The logistic model needs two classes; the labels hold {len(classes)}: "
                                 f"{', '.join(map(repr, classes[:5]))}. Use --model softmax or --model mlp for more.")  # fmt: skip
        return np.searchsorted(classes, y).astype(float)
    if model == "linear":
        return y
    classes = np.unique(y)
    if len(classes) == 1:
        raise XregInputError(
            f"The labels hold one class only ({classes[0]:g}); the {model} model needs at least two classes."
        )
    if model == "logistic" and len(classes) > 2:
        raise XregInputError(
            f"The logistic model needs two classes; the labels hold {len(classes)}: {{{_shown(classes)}}}. "
            "Use --model softmax or --model mlp for more."
        )
    if np.array_equal(classes, np.arange(len(classes))):
        return y
    if not map_labels:
        maps = [f"{c:g} -> {i}" for i, c in enumerate(classes[:5])] + (["..."] if len(classes) > 5 else [])
        targets = ", ".join(maps[:-1]) + " and " + maps[-1]
        need = "0/1 labels" if model == "logistic" else "class labels 0..K-1"
        raise XregInputError(f"The {model} model needs {need}; got {{{_shown(classes)}}}. Pass --map-labels to map {targets}.")
    return np.searchsorted(classes, y).astype(float)


def load_csv(
    path: str | Path,
    target: str,
    *,
    model: str = "logistic",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    map_labels: bool = False,
    max_features: int | None = MAX_FEATURES,
    delimiter: str = ",",
    drop: Sequence[str] = (),
    drop_missing: bool = False,
) -> Dataset:
    _check_file(path)  # a device, a FIFO or /dev/zero behind a link is refused before a byte is read
    _check_features(path, _header_features(path, delimiter, drop), max_features)  # from the header, before the rows
    X, y, names = read_csv(path, target, delimiter=delimiter, drop=drop, map_labels=map_labels, drop_missing=drop_missing)
    _check_features(path, X.shape[1], max_features)
    y = prepare_labels(y, model, map_labels)
    return _two_classes(split(Path(path).name, X, y, names, target, test_fraction), model, test_fraction)


MAX_CSV_BYTES = 2 * 2**30  # the largest data file read (its cells are held as text, then as float64)


def _check_file(path) -> None:
    p = Path(path)
    if not p.exists():
        raise XregInputError(f"The data file '{path}' does not exist.")
    if not p.is_file():  # follows links: a link to /dev/zero is a character device, not a file
        raise XregInputError(f"The data file '{path}' is not a regular file (a folder, device, pipe or socket); "
                             "give a CSV file.")  # fmt: skip
    if p.stat().st_size > MAX_CSV_BYTES:
        raise XregInputError(f"The data file '{path}' has {p.stat().st_size / 2**30:.3g} GiB, more than the "
                             f"{MAX_CSV_BYTES / 2**30:g} GiB xreg reads.")  # fmt: skip


def _check_features(path, n: int, max_features: int | None) -> None:
    if max_features is not None and n > max_features:
        raise XregInputError(f"'{path}' has {n} feature columns, more than the limit of {max_features}; "
                             "pass --allow-many-features if this is intended.")  # fmt: skip


def _header_features(path, delimiter: str, drop: Sequence[str]) -> int:
    """Feature columns named by the first non-blank line (the header), read without the rest of the file."""
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            line = next((ln for ln in fh if ln.strip()), "")
        fields = next(csv.reader([line], delimiter=delimiter), []) if len(delimiter) == 1 else []
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0  # read_csv says what is wrong
    return max(len(fields) - 1 - len(set(drop) & {f.strip() for f in fields}), 0)


def _two_classes(data: Dataset, model: str, test_fraction: float) -> Dataset:
    """A classifier's training split must keep two classes (a large --test-fraction can leave one)."""
    if model != "linear" and len(np.unique(data.y_train)) < 2:
        raise XregInputError(f"The training split holds one class only (test fraction {test_fraction:g}, "
                             f"{data.n_train} training rows); the {model} model needs two or more.")  # fmt: skip
    return data


def _default_raw():
    ref = resources.files("xreg") / "data" / "default.csv"
    with resources.as_file(ref) as path:
        X, y, names = read_csv(path, DEFAULT_TARGET)
    return DEFAULT_NAME, X, y, names, DEFAULT_TARGET


def default_dataset(test_fraction: float = DEFAULT_TEST_FRACTION) -> Dataset:
    """The embedded default: 1370 rows x 4 features, 0/1 labels; 1096 train + 274 test at f=0.2."""
    return split(*_default_raw(), test_fraction)


def _digits_file():
    """scikit-learn's own copy of the digits (``sklearn/datasets/data/digits.csv.gz``, what ``load_digits``
    reads), found without importing scikit-learn (2-5 s of imports); None where the layout differs."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def _sklearn_raw(name: str):
    if name == "digits" and (path := _digits_file()) is not None:
        table = np.loadtxt(path, delimiter=",")  # 64 pixel columns, then the digit
        names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
        return name, table[:, :-1], table[:, -1], names, "target"
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    names = tuple(str(f) for f in getattr(bunch, "feature_names", [f"x{i}" for i in range(bunch.data.shape[1])]))
    return name, np.asarray(bunch.data, float), np.asarray(bunch.target, float), names, "target"


def standardized(data: Dataset) -> Dataset:
    """Features centred and scaled by the training split's mean and standard deviation (both splits)."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean = data.X_train.mean(axis=0)
        std = data.X_train.std(axis=0)
    bad = [n for n, m, s in zip(data.feature_names, mean, std) if not (np.isfinite(m) and np.isfinite(s))]
    if bad:  # (x - mean)/inf would silently zero the feature
        raise XregInputError(f"--standardize: the feature '{bad[0]}' holds values too large for its mean or standard "
                             "deviation in float64 (near 1e308); rescale it in the file first.")  # fmt: skip
    std = np.where(std > 0, std, 1.0)
    return Dataset(f"{data.name} (standardized)", (data.X_train - mean) / std, data.y_train,
                   (data.X_test - mean) / std, data.y_test, data.feature_names, data.target, data.image_shape)  # fmt: skip


def load(
    source: str | None,
    target: str | None = None,
    *,
    model: str = "logistic",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    map_labels: bool = False,
    max_features: int | None = MAX_FEATURES,
    delimiter: str = ",",
    drop: Sequence[str] = (),
    standardize: bool = False,
    drop_missing: bool = False,
) -> Dataset:
    """The embedded default (``source=None``), a scikit-learn dataset by name, or a CSV path."""
    if source is None or source in SKLEARN_DATASETS:
        if target is not None:
            raise XregInputError("--target needs --data PATH.csv (a shipped dataset has its own labels).")
        if drop or drop_missing:
            raise XregInputError(f"{'--drop' if drop else '--drop-missing'} is for a CSV file given with --data PATH.")
        name, X, y, names, column = _default_raw() if source is None else _sklearn_raw(source)
        data = _two_classes(split(name, X, prepare_labels(y, model, map_labels), names, column, test_fraction), model,
                            test_fraction)  # fmt: skip
        if source == "digits" and data.n_features == 64:  # 8 x 8 grey images, row by row
            data = dataclasses.replace(data, image_shape=(1, 8, 8))
    else:
        if target is None:
            raise XregInputError(
                f"--data needs --target COLUMN (the label column of '{source}'); "
                f"shipped datasets: {', '.join(SKLEARN_DATASETS)}."
            )
        data = load_csv(source, target, model=model, test_fraction=test_fraction, map_labels=map_labels,
                        max_features=max_features, delimiter=delimiter, drop=drop, drop_missing=drop_missing)  # fmt: skip
    return standardized(data) if standardize else data
