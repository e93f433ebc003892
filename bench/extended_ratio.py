"""Extended precision (long double / double-double C kernels) against float64, per GD step.

    python bench/extended_ratio.py            # the table: float64 and extended time per step
    pytest bench/bench_models.py -k extended --benchmark-only   # the same jobs as groups

Jobs (exp loss, fixed steps): ``Diagonal(2)`` d = N = 64, ``FullyConnected([50])`` d = 50,
N = 200, full-width ``Convolutional(2)`` and ``Convolutional(3)`` d = N = 64 (the factored and
Fourier kernels), then ``LowRank(2)`` d = 16, N = 64, ``Convolutional(2)`` with a kernel of 3,
d = N = 64, and compare.py's order-3 ``Tensor`` (nnz = 1000, d = 50, N = 200), which take the
tensor-network kernel (``fb_gd_tensor_ld``: the contraction on the nonzeros, the data products
in double-double), each through the model's own compiled runner (``Model.runner``, what
``train`` calls), float64 and ``precision="extended"`` one after the other in this process,
median of ``--repeat`` runs after a warm-up. Issue 12's goal is a ratio of at most 8.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import fastbias as fb
from fastbias.models import Convolutional, Diagonal, FullyConnected, LowRank

LR = 1e-3


def _tensor3():
    from jobs import tensor3  # (bench/jobs.py: compare.py's order-3 tensor network)

    return tensor3().model


#: name -> (model or a function making it, N, d, float64 steps, extended steps, step size)
JOBS = {
    "Diagonal(2), d=N=64": (Diagonal(2), 64, 64, 20_000, 2_000, LR),
    "FullyConnected([50]), d=50, N=200": (FullyConnected([50]), 200, 50, 5_000, 500, LR),
    "Convolutional(2) full width, d=N=64": (Convolutional(2), 64, 64, 20_000, 2_000, LR),
    "Convolutional(3) full width, d=N=64": (Convolutional(3), 64, 64, 20_000, 2_000, LR),
    "LowRank(2), d=16, N=64": (LowRank(2), 64, 16, 20_000, 2_000, LR),
    "Convolutional(2) kernel 3, d=N=64": (
        Convolutional(2, kernel_sizes=[3]),
        64,
        64,
        20_000,
        2_000,
        LR,
    ),
    "Tensor order 3, nnz=1000, d=50, N=200": (_tensor3, 200, 50, 5_000, 500, 1e-6),
}


def step_run(name: str, precision: str, steps: int | None = None):
    """``(fn, steps)``: ``fn()`` runs ``steps`` GD steps of job ``name`` (warmed up)."""
    model, N, d, s64, sext, lr = JOBS[name]
    model = model() if callable(model) else model
    steps = steps or (sext if precision == "extended" else s64)
    X, y = fb.datasets.separable_gaussian(N, d, margin=0.1, seed=0)
    Z = np.ascontiguousarray(X * y[:, None])
    dtype = np.longdouble if precision == "extended" else np.float64
    run = model.runner(Z, np.zeros(N), 0, precision)
    theta0 = model.flatten(model.init_params(d, None, 1.0, 0)).astype(dtype)
    rec = np.zeros((0, theta0.size), dtype=dtype)
    sched = np.zeros(0, dtype=np.int64)

    def go():
        theta = theta0.copy()
        status, _ = run(theta, dtype(lr), 0, 0, steps, sched, rec, dtype(-1e300))
        assert status == 0
        return theta

    go()
    return go, steps


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{'job (time per GD step)':<40}{'float64':>12}{'extended':>12}{'ratio':>8}")
    for name in JOBS:
        t = {}
        for precision in ("float64", "extended"):
            fn, steps = step_run(name, precision)
            t[precision] = _median(fn, args.repeat) / steps
        print(f"{name:<40}{t['float64'] * 1e6:>9.2f} us{t['extended'] * 1e6:>9.2f} us"
              f"{t['extended'] / t['float64']:>7.1f}x")  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedian of {args.repeat}; load average {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
