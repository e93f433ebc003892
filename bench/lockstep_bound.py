"""What bounds the lock-step batches of the Figure 3.1 data (issue 12, item 4).

    python bench/lockstep_bound.py

A run-step of the linear model on the Figure 3.1 data (N = 16 samples, d = 2) costs 16
exponentials and ~100 flops. In the lock-step kernel (csrc/fb_lockstep_f64.c) the runs are
SIMD lanes and the exponentials are ``fb_exp_fma`` (csrc/fb_f64_core.h) on 4-lane vectors, so
the kernel cannot be faster than 16 of those per run-step. This prints, measured side by side
in this process:

* the throughput of ``fb_exp_fma`` on one core: 64 independent arguments, the pass repeated
  (``fastbias.kernels._c.exp_f64_check``), in ns per exp and per 4-lane vector;
* the floor it sets: 16 exps per run-step, on one core and on two (perfect scaling);
* the lock-step kernel itself, 64 runs x 10^5 steps through ``fb.train_batch`` with one and
  with two workers, in ns per run-step, and the share of it the exps alone take.

The goal of issue 12 is 8 ns per run-step on 2 cores. Medians of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import fastbias as fb
from fastbias.kernels import _c

EXPS_PER_RUN_STEP = 16  # the Figure 3.1 data: N = 16 samples


def exp_ns(repeat: int) -> float | None:
    """Median ns per exp of ``fb_exp_fma`` on one core (None without AVX2/FMA)."""
    x = np.random.default_rng(0).uniform(-20.0, 0.0, 64)
    passes = 100_000
    if _c.exp_f64_check(x, 2, 1000) is None:
        return None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _c.exp_f64_check(x, 2, passes)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (passes * x.size) * 1e9


def lockstep_ns(workers: int, repeat: int, steps: int = 100_000) -> float:
    """Median ns per run-step of 64 Figure 3.1 runs (step sizes) in lock step."""
    X, y = fb.datasets.soudry2018()
    lrs = list(np.linspace(0.05, 0.5, 64))
    kw = dict(reference=None, record=2, n_workers=workers)
    fb.train_batch(X, y, lrs=lrs, steps=10, **kw)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fb.train_batch(X, y, lrs=lrs, steps=steps, **kw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (64 * steps) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    t_exp = exp_ns(args.repeat)
    if t_exp is None:
        print("fb_exp_fma does not run here (no AVX2/FMA, or no C extension)")
        return
    floor1 = EXPS_PER_RUN_STEP * t_exp
    print(f"fb_exp_fma, one core: {t_exp:.3f} ns per exp, {4 * t_exp:.2f} ns per 4-lane vector")
    print(f"floor from the exps alone ({EXPS_PER_RUN_STEP} per run-step): "
          f"{floor1:.1f} ns per run-step on one core, {floor1 / 2:.1f} ns on two")  # fmt: skip
    for workers in (1, 2):
        t = lockstep_ns(workers, args.repeat)
        floor = floor1 / workers
        label = f"{workers} worker" + ("s" if workers > 1 else "")
        print(f"lock-step, 64 Figure 3.1 runs, {label}: {t:.1f} ns per run-step "
              f"(exps alone {floor:.1f}, {floor / t:.0%} of it)")  # fmt: skip
    print("issue 12 goal: 8 ns per run-step on 2 cores")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedian of {args.repeat}; load average {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
