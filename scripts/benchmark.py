"""Time the three backends on one spec and print the ratios measured in this one run.

    .venv/bin/python scripts/benchmark.py                   # the default problem (1000 full-batch steps)
    .venv/bin/python scripts/benchmark.py --epochs 20000    # a longer run

Each backend trains the spec --repeat times; the best wall time counts. The JAX time includes tracing
and compiling, since every train() call builds and compiles its own run (there is no cached fast path
yet); the 'jax (cached)' row re-runs the already-compiled function to show the compile share.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xreg import backends, data
from xreg.spec import ExperimentSpec


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
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    spec = ExperimentSpec(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                          lr=0.05 if args.optimizer in ("sgd", "asgd") else 0.01)  # fmt: skip
    ds = data.default_dataset()
    for name in backends.NAMES:  # import every framework before timing
        backends.load(name)
    times = {name: best_time(lambda n=name: backends.train(n, spec, ds), args.repeat) for name in backends.NAMES}

    import jax

    from xreg.backends import jax_backend
    from xreg.plan import make_plan

    plan = make_plan(spec, ds.n_train, ds.n_features)
    import optax

    tx = optax.chain(*(link.transform for link in jax_backend.build_chain(spec, plan)))
    run = jax.jit(jax_backend.make_run(spec, plan, tx, np.float64))
    idx, valid = plan.padded_indices()
    args_ = ({"weight": np.zeros(ds.n_features), "bias": np.zeros(1)}, ds.X_train, ds.y_train, ds.X_test, ds.y_test, idx, valid)
    jax.block_until_ready(run(*args_))
    times["jax (cached)"] = best_time(lambda: jax.block_until_ready(run(*args_)), args.repeat)

    steps = plan.steps
    print(f"{args.optimizer}, {steps} steps, batches of {max(plan.batch_sizes)} rows, float64, best of {args.repeat}")
    for name, t in times.items():
        print(f"  {name:13} {t:8.3f} s  {1e6 * t / steps:9.1f} us/step  {times['torch'] / t:6.2f}x torch's speed")


if __name__ == "__main__":
    main()
