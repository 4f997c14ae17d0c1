"""Issue 10, reports: --report PATH.md/.html (self-contained), --csv, --json-params, --json -."""

import base64
import csv
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from helpers import assert_same_picture, assert_same_text
from xreg.cli import main

ARGS = ["--epochs", "12", "--no-decay", "bias"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    code = main([*ARGS, "--report", str(d / "r.md"), "--csv", str(d / "t.csv"), "--json", str(d / "c.json"), "--json-params"])
    assert code == 1  # the scratch run mismatches
    assert main([*ARGS, "--report", str(d / "r.html")]) == 1
    return d


def test_markdown_report_holds_every_part(outputs):
    md = (outputs / "r.md").read_text()
    for part in ("# xreg comparison: default, logistic + sgd", "## Runs", "| numpy/scratch | scratch |", "## Verdicts and causes",
                 "numpy/scratch: scratch lam=0.1 with m=1096", "## Figure", "## Equivalent settings",
                 "optax.chain(optax.add_decayed_weights(0.1, mask=xreg.twins.decay_mask(('bias',)))"):  # fmt: skip
        assert part in md, part
    png = base64.b64decode(md.split("data:image/png;base64,")[1].split(")")[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # the figure itself, embedded


def test_report_code_pastes_and_runs(outputs):
    import optax
    import torch

    import xreg.twins  # noqa: F401

    md = (outputs / "r.md").read_text()
    blocks = md.split("```python\n")[1:]
    torch_code, optax_code = (b.split("\n```")[0] for b in blocks[:2])
    model = torch.nn.Linear(4, 1)
    opt = eval(torch_code, {"torch": torch, "model": model})
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert isinstance(eval(optax_code, {"optax": optax, "xreg": xreg}), optax.GradientTransformation)


def test_csv_and_json_params_hold_every_step(outputs):
    doc = json.loads((outputs / "c.json").read_text())
    with (outputs / "t.csv").open() as f:
        rows = list(csv.DictReader(f))
    runs = [r["label"] for r in doc["runs"]]
    assert len(rows) == len(runs) * 13 and [r["run"] for r in rows[::13]] == runs
    ref = doc["runs"][0]
    weight = np.array(ref["params"]["weight"])  # (13, 1, 4): every kept step
    assert weight.shape == (13, 1, 4)
    np.testing.assert_array_equal([float(r["weight[0,2]"]) for r in rows[:13]], weight[:, 0, 2])
    assert float(rows[0]["loss"]) == pytest.approx(np.log(2)) and rows[12]["loss"] == ""  # zeros start; no step after the last


def test_json_to_stdout_alone(capsys):
    assert main(["--epochs", "3", "--backend", "numpy", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["all_match"] is True and "match tolerance" in captured.err


def test_outputs_checked_before_training(tmp_path, capsys):
    for argv, message in ((["--json", str(tmp_path / "a"), "--csv", str(tmp_path / "a")], "both name"),
                          (["--report", str(tmp_path / "r.pdf")], "--report takes PATH.md or PATH.html")):  # fmt: skip
        assert main(["--epochs", "1", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_html_report_in_a_headless_browser(outputs, tmp_path):
    html = (outputs / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<img alt='loss, accuracies and deviation' src='data:image/png;base64," in html
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); the HTML is checked above")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1200,2400",
                    (outputs / "r.html").as_uri()], check=True, capture_output=True, timeout=120)  # fmt: skip
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[0] >= 2000 and img[..., :3].std() > 0.05  # not blank: text, table and the figure
    # the figure's region holds colour (plot lines), not only text
    assert (np.abs(img[..., 0] - img[..., 2]) > 0.3).sum() > 500


def test_committed_example_is_current(tmp_path, monkeypatch):
    """comparisons/examples/ is what scripts/make_examples.sh writes today (same flags): the report in every
    word and in the digits that hold on every CPU, the figure by what it shows (not its bytes)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    md, png = tmp_path / "c.md", tmp_path / "c.png"
    main(["compare", "comparisons/classic_logistic.toml", "--report", str(md), "--plot", str(png)])
    embedded = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")
    want = (root / "comparisons/examples/classic_logistic.md").read_text()
    assert len(embedded.findall(md.read_text())) == len(embedded.findall(want)) == 1
    assert_same_text(embedded.sub("IMAGE", md.read_text()), embedded.sub("IMAGE", want), "run scripts/make_examples.sh")
    assert_same_picture(png, root / "comparisons/examples/classic_logistic.png")


def test_outputs_never_replace_a_device_or_a_link(tmp_path, capsys):
    import os

    from xreg.io.files import write_atomic

    with pytest.raises(PermissionError, match="is under /dev: a kernel interface"):
        write_atomic("/dev/null", "x", force=True)
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["--epochs", "1", "--backend", "numpy", "--json", str(fifo), "--force"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    target, link = tmp_path / "real.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    assert main(["--epochs", "1", "--backend", "numpy", "--json", str(link)]) == 2  # exists: --force needed
    assert main(["--epochs", "1", "--backend", "numpy", "--json", str(link), "--force"]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["all_match"] is True  # written through the link


def test_the_table_names_the_rest_of_the_training_step(capsys):
    from xreg.cli import main

    base = ["--epochs", "6", "--batch-size", "110", "--backend", "torch", "--backend", "numpy"]
    assert main(base + ["--model", "softmax", "--label-smoothing", "0.1"]) == 0  # smoothing alone (no class weights)
    assert "  every run: loss(label_smoothing=0.1)" in capsys.readouterr().out
    assert main(base + ["--accumulate", "2", "--clip-value", "0.01", "--schedule", "StepLR(step_size=3)", "--resume-at", "9"]) == 0
    out = capsys.readouterr().out
    assert ("  every run: (loss/2).backward() for 2 micro-batches a step; clip_grad_value_(params, 0.01); "
            "StepLR(step_size=3, gamma=0.1) stepped per epoch; saved and resumed after step 9") in out, out  # fmt: skip
    assert main(base) == 0
    assert "every run:" not in capsys.readouterr().out  # a plain step says nothing
