"""``xreg bench``: how fast is the project's JAX path, against plain code and against the machine?

One process, one run: the same training (logistic regression, SGD with weight decay ``lam*w`` on every
parameter, full batch, zeros start) in

* ``xreg jax``: the project's compiled path with nothing recorded along the way (``fitter``: what a
  sweep runs per grid point, and what ``--record-every`` style long runs cost),
* ``xreg jax (recorded)``: the project's ``train`` of the seed problem, every step's parameters and
  loss recorded and moved to the host (what ``xreg compare`` runs),
* ``numpy loop``: the update written out in vectorized NumPy,
* ``torch eager``: ``nn.Linear`` + ``BCEWithLogitsLoss`` + autograd + ``torch.optim.SGD(weight_decay)``,
  on torch's default threads and on one (``torch eager (1 thread)``, what xreg's torch backend uses for
  a tiny problem),
* ``torch.compile``: the NumPy loop's update as a ``torch.compile``-d step (skipped with
  ``--no-torch-compile``, or where inductor fails),
* ``jax one-pass``: (large problems) the gradient in row chunks that stay in cache, so each step reads
  X once instead of twice,

on the seed problem (the embedded 1096 x 4 data) and synthetic 100k x 32 and 1M x 32 problems, in
float32 and float64. Per-step time is the median over ``--repeat`` runs divided by the steps; the
first run's extra time (tracing, compiling) is reported apart. The machine's read bandwidth is measured
in the same run (a jitted sum over a 256 MB array, every core), and each large problem's step is
reported as a multiple of its roofline: the bytes of X a two-pass step must read (forward ``X w``,
backward ``X^T r``) over that bandwidth. Last, whole processes timed from outside (:data:`COMMANDS`): the
default comparison, and the imports it cannot avoid.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from xreg.core.spec import Dataset, ExperimentSpec

SIZES = {"seed": None, "100k": (100_000, 32), "1m": (1_000_000, 32)}
STEPS = {"seed": 2000, "100k": 100, "1m": 20}
LR, LAM = 0.05, 0.1


@dataclass
class Row:
    problem: str
    dtype: str
    impl: str
    steps: int
    per_step_us: float
    first_extra_s: float  # first run minus the median: tracing and compiling
    roofline_us: float | None = None
    note: str = ""

    @property
    def x_roofline(self) -> float | None:
        return None if self.roofline_us is None else self.per_step_us / self.roofline_us


def problem(size: str) -> Dataset:
    if SIZES[size] is None:
        from xreg.io import data

        return data.load(None, model="logistic")
    n, d = SIZES[size]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n + 1000, d))
    y = (X @ rng.standard_normal(d) + rng.standard_normal(n + 1000) > 0).astype(np.float64)
    return Dataset(f"synthetic {n} x {d}", X[:n], y[:n], X[n:], y[n:], tuple(f"x{i}" for i in range(d)))


def read_bandwidth(repeat: int = 7) -> float:
    """Bytes per second a jitted sum over a 256 MB float32 array reads (every core XLA uses)."""
    import jax
    import jax.numpy as jnp

    a = jax.device_put(np.ones(64 * 2**20, np.float32))
    f = jax.jit(jnp.sum)
    f(a).block_until_ready()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return a.nbytes / min(times)


def timed(run: Callable[[int], object], steps: int, repeat: int) -> tuple[float, float]:
    """(median per-step seconds, first run's extra seconds); ``run(k)`` does the k-th run (lr ``_lr(k)``)
    and returns the final (weight, bias), which the tests compare across the implementations."""
    t0 = time.perf_counter()
    run(0)
    first = time.perf_counter() - t0
    times = []
    for k in range(1, repeat + 1):
        t0 = time.perf_counter()
        run(k)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return med / steps, max(0.0, first - med)


def _lr(k: int) -> float:
    return LR * (1 - 1e-3 * k)  # a new lr every run: compiled paths must not be re-specialized or cached


def xreg_jax(ds: Dataset, dtype: str, steps: int) -> Callable[[int], None]:
    from xreg.backends.jax import run as jax_run

    spec = ExperimentSpec(epochs=steps, dtype=dtype, lr=LR, lam=LAM)
    go = jax_run.fitter(spec, ds)

    def run(k: int):
        p = go(spec.replace(lr=_lr(k)))
        return p["weight"][0], p["bias"][0]

    return run


def xreg_jax_recorded(ds: Dataset, dtype: str, steps: int) -> Callable[[int], None]:
    from xreg import backends

    spec = ExperimentSpec(epochs=steps, dtype=dtype, lr=LR, lam=LAM)

    def run(k: int):
        p = backends.train("jax", spec.replace(lr=_lr(k)), ds).final_params
        return p["weight"][0], p["bias"][0]

    return run


def numpy_loop(ds: Dataset, dtype: str, steps: int) -> Callable[[int], None]:
    X, y = ds.X_train.astype(dtype), ds.y_train.astype(dtype)
    m = X.shape[0]

    def run(k: int):
        lr, lam = np.asarray(_lr(k), dtype), np.asarray(LAM, dtype)
        w, b = np.zeros(X.shape[1], dtype), np.zeros((), dtype)
        for _ in range(steps):
            r = (1 / (1 + np.exp(-(X @ w + b))) - y) / m
            w, b = w - lr * (X.T @ r + lam * w), b - lr * (r.sum() + lam * b)
        return w, b

    return run


def torch_eager(ds: Dataset, dtype: str, steps: int, threads: int | None = None) -> Callable[[int], None]:
    import torch

    tdt = getattr(torch, dtype)
    X, y = torch.as_tensor(ds.X_train, dtype=tdt), torch.as_tensor(ds.y_train, dtype=tdt)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def run(k: int):
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            model = torch.nn.Linear(X.shape[1], 1, dtype=tdt)
            with torch.no_grad():
                model.weight.zero_()
                model.bias.zero_()
            opt = torch.optim.SGD(model.parameters(), lr=_lr(k), weight_decay=LAM)
            for _ in range(steps):
                opt.zero_grad()
                loss_fn(model(X)[:, 0], y).backward()
                opt.step()
            return model.weight.detach().numpy()[0], model.bias.detach().numpy()[0]
        finally:
            torch.set_num_threads(before)

    return run


def torch_one_thread(ds: Dataset, dtype: str, steps: int) -> Callable[[int], None]:
    """torch eager on one intra-op thread: what xreg's torch backend runs a tiny problem on (torch's default
    threads wait on each other on a busy machine)."""
    return torch_eager(ds, dtype, steps, threads=1)


def torch_compiled(ds: Dataset, dtype: str, steps: int) -> Callable[[int], None]:
    import torch

    tdt = getattr(torch, dtype)
    X, y = torch.as_tensor(ds.X_train, dtype=tdt), torch.as_tensor(ds.y_train, dtype=tdt)
    m = X.shape[0]

    @torch.compile(dynamic=False)
    def step(w, b, lr):
        r = (torch.sigmoid(X @ w + b) - y) / m
        return w - lr * (X.T @ r + LAM * w), b - lr * (r.sum() + LAM * b)

    def run(k: int):
        w, b = torch.zeros(X.shape[1], dtype=tdt), torch.zeros((), dtype=tdt)
        lr = torch.tensor(_lr(k), dtype=tdt)
        with torch.no_grad():
            for _ in range(steps):
                w, b = step(w, b, lr)
        return w.numpy(), b.numpy()

    return run


def jax_one_pass(ds: Dataset, dtype: str, steps: int, rows: int = 4096) -> Callable[[int], None]:
    """Each step reads X once: row chunks small enough to stay in cache give z, r and X_c^T r together."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(dtype == "float64"):
        n, d = ds.X_train.shape
        pad = -n % rows
        X = np.concatenate([ds.X_train, np.zeros((pad, d))]).astype(dtype).reshape(-1, rows, d)
        y = np.concatenate([ds.y_train, np.zeros(pad)]).astype(dtype).reshape(-1, rows)
        ok = (np.arange(n + pad) < n).astype(dtype).reshape(-1, rows)
        Xd, yd, okd = (jax.device_put(a) for a in (X, y, ok))

        @jax.jit
        def fit(lr, X, y, ok):
            def one_step(wb, _):
                w, b = wb

                def chunk(acc, xyo):
                    Xc, yc, oc = xyo
                    r = (jax.nn.sigmoid(Xc @ w + b) - yc) * oc / n
                    return (acc[0] + Xc.T @ r, acc[1] + r.sum()), None

                (gw, gb), _ = jax.lax.scan(chunk, (jnp.zeros(d, X.dtype), jnp.zeros((), X.dtype)), (X, y, ok))
                return (w - lr * (gw + LAM * w), b - lr * (gb + LAM * b)), None

            return jax.lax.scan(one_step, (jnp.zeros(d, X.dtype), jnp.zeros((), X.dtype)), None, length=steps)[0]

    def run(k: int):
        with jax.enable_x64(dtype == "float64"):
            w, b = jax.block_until_ready(fit(np.asarray(_lr(k), dtype), Xd, yd, okd))
            return np.asarray(w), np.asarray(b)

    return run


IMPLS: dict[str, Callable] = {
    "xreg jax": xreg_jax,
    "xreg jax (recorded)": xreg_jax_recorded,
    "numpy loop": numpy_loop,
    "torch eager": torch_eager,
    "torch eager (1 thread)": torch_one_thread,
    "torch.compile": torch_compiled,
    "jax one-pass": jax_one_pass,
}


COMMANDS = {  # whole processes, timed from outside: what the user waits for, and the floor under it
    "xreg --quiet (the default comparison)": ["-m", "xreg", "--quiet"],
    "import torch, torch._dynamo (torch.optim's first step)": ["-c", "import torch, torch._dynamo"],
    "import jax, optax": ["-c", "import jax, optax"],
}


def commands(repeat: int, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Each of :data:`COMMANDS` run ``repeat`` times in a fresh interpreter: the wall times and their median.
    The default comparison exits 1 (its scratch run is a mismatch); any other status is a failed row."""
    import subprocess
    import sys

    out = []
    for label, argv in COMMANDS.items():
        (progress or (lambda text: None))(f"command: {label}")
        times, note = [], ""
        for _ in range(repeat):
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600)
            times.append(time.perf_counter() - t0)
            if p.returncode not in (0, 1) or p.stderr:
                note = f"failed: exit {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1][:120]}"
        out.append({"command": label, "median_s": statistics.median(times), "runs_s": times, "note": note})
    return out


def run_bench(sizes=("seed", "100k", "1m"), dtypes=("float32", "float64"), repeat: int = 5, torch_compile: bool = True,
              steps: dict[str, int] | None = None, progress: Callable[[str], None] | None = None,
              with_commands: bool = True) -> dict:  # fmt: skip
    import jax
    import torch

    steps = {**STEPS, **(steps or {})}
    note = progress or (lambda text: None)
    note("measuring read bandwidth")
    bw = read_bandwidth()
    rows: list[Row] = []
    for size in sizes:
        ds = problem(size)
        for dtype in dtypes:
            n, d = ds.X_train.shape
            floor = None if SIZES[size] is None else 2 * n * d * np.dtype(dtype).itemsize / bw * 1e6
            for impl, make in IMPLS.items():
                if impl == "xreg jax (recorded)" and size != "seed":
                    continue  # every step's parameters and loss recorded: the seed problem shows its cost
                if impl == "jax one-pass" and size == "seed":
                    continue
                if impl == "torch.compile" and not torch_compile:
                    continue
                note(f"{size} {dtype}: {impl}")
                try:
                    per_step, extra = timed(make(ds, dtype, steps[size]), steps[size], repeat)
                    rows.append(Row(ds.name, dtype, impl, steps[size], per_step * 1e6, extra, floor))
                except Exception as exc:  # torch.compile without a working compiler, out of memory, ...
                    rows.append(Row(ds.name, dtype, impl, steps[size], math.nan, math.nan, floor,
                                    f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"))  # fmt: skip
    return {
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "read_bandwidth_GBps": bw / 1e9, "jax": jax.__version__, "torch": torch.__version__,
                    "numpy": np.__version__, "jax_devices": [str(d) for d in jax.devices()]},  # fmt: skip
        "repeat": repeat,
        "rows": [{**asdict(r), "x_roofline": r.x_roofline} for r in rows],
        "commands": commands(repeat, progress) if with_commands else [],
    }


def table(result: dict) -> str:
    mach = result["machine"]
    lines = [f"{mach['cpus']} cpus, read bandwidth {mach['read_bandwidth_GBps']:.1f} GB/s (jitted sum, 256 MB); "
             f"median of {result['repeat']} runs; first run's extra time (trace + compile) apart"]  # fmt: skip
    head = ["problem", "dtype", "implementation", "steps", "us/step", "vs numpy", "first-run extra", "x roofline"]
    body = []
    for r in result["rows"]:
        ref = next((q for q in result["rows"] if q["problem"] == r["problem"] and q["dtype"] == r["dtype"]
                    and q["impl"] == "numpy loop"), None)  # fmt: skip
        ratio = r["per_step_us"] / ref["per_step_us"] if ref and ref["per_step_us"] else math.nan
        body.append([r["problem"], r["dtype"], r["impl"], str(r["steps"]),
                     "-" if math.isnan(r["per_step_us"]) else f"{r['per_step_us']:.1f}",
                     "-" if math.isnan(ratio) else f"{ratio:.3f}x",
                     "-" if math.isnan(r["first_extra_s"]) else f"{r['first_extra_s']:.2f} s",
                     "-" if r["x_roofline"] is None or math.isnan(r["x_roofline"]) else f"{r['x_roofline']:.2f}x"]
                    + ([r["note"]] if r["note"] else []))  # fmt: skip
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths + [0])) for row in body]
    if result.get("commands"):
        width = max(len(c["command"]) for c in result["commands"])
        lines += ["", f"whole processes, wall time from outside (median of {result['repeat']}):"]
        lines += [f"  {c['command']:<{width}}  {c['median_s']:.2f} s" + (f"  {c['note']}" if c["note"] else "")
                  for c in result["commands"]]  # fmt: skip
    return "\n".join(lines)
