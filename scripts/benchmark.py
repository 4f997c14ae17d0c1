"""Time the three backends on one spec and print the ratios measured in this one run.

    .venv/bin/python scripts/benchmark.py                   # the default problem (1000 full-batch steps)
    .venv/bin/python scripts/benchmark.py --epochs 20000    # a longer run
    .venv/bin/python scripts/benchmark.py --data digits --model mlp --optimizer adam --epochs 300

Each backend trains the spec --repeat times; the best wall time counts. 'jax (first)' is the first
train() of a structure in this process: tracing and compiling included. 'jax' is a later train()
with another lr and lam: the compiled program is reused (hyperparameters are traced inputs).
"""

from __future__ import annotations

import argparse
import time

from xreg import backends
from xreg.backends.jax import run as jax_run
from xreg.core.plan import batch_sizes
from xreg.core.spec import ExperimentSpec
from xreg.io import data


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(prog="scripts/benchmark.py")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--model", default="logistic")
    p.add_argument("--data", help="a shipped dataset name (default: the embedded one)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    spec = ExperimentSpec(model=args.model, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                          lr=0.05 if args.optimizer in ("sgd", "asgd") else 0.01)  # fmt: skip
    ds = data.load(args.data, model=args.model, standardize=args.data is not None)
    for name in backends.NAMES:  # import every framework before timing
        backends.load(name)
    t0 = time.perf_counter()
    backends.train("jax", spec, ds)
    times = {"jax (first)": time.perf_counter() - t0}
    other = spec.replace(lr=spec.lr * 0.9, lam=spec.lam * 1.1)
    traces = sum(jax_run.TRACES.values())
    times.update({name: best_time(lambda n=name: backends.train(n, other, ds), args.repeat) for name in backends.NAMES})
    steps = args.epochs * len(batch_sizes(spec, ds.n_train))
    print(f"{args.model} + {args.optimizer}, {steps} steps, {ds.name}, float64, best of {args.repeat}; "
          f"jax compilations after the first run: {sum(jax_run.TRACES.values()) - traces}")
    for name, t in times.items():
        print(f"  {name:12} {t:8.3f} s  {1e6 * t / steps:9.1f} us/step  {times['torch'] / t:6.2f}x torch's speed")


if __name__ == "__main__":
    main()
