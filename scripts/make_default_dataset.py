"""Regenerate xreg/data/default.csv, the embedded default dataset (run once; the CSV is committed).

1370 rows, 4 features with the scales of the banknote-authentication measurements (variance, skewness,
curtosis and entropy of a wavelet-transformed image), and a 0/1 label drawn from a logistic model so the
classes overlap (not separable). Values are rounded to 4 decimals; the CSV, not this script, is the data.
"""

from pathlib import Path

import numpy as np

N_ROWS = 1370
OUT = Path(__file__).resolve().parents[1] / "xreg" / "data" / "default.csv"


def main() -> None:
    rng = np.random.default_rng(20261125)
    scale = np.array([2.8, 5.9, 4.3, 2.1])
    shift = np.array([0.43, 1.92, 1.40, -1.19])
    X = np.round(rng.standard_normal((N_ROWS, 4)) * scale + shift, 4)
    logits = X @ np.array([-1.2, -0.55, -0.7, 0.1]) + 1.0
    y = (rng.random(N_ROWS) < 1 / (1 + np.exp(-logits))).astype(int)
    lines = ["variance,skewness,curtosis,entropy,class"]
    lines += [",".join(f"{v:.4f}" for v in row) + f",{label}" for row, label in zip(X, y)]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({N_ROWS} rows, class balance {y.mean():.3f})")


if __name__ == "__main__":
    main()
