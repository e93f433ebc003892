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
* the core's vector floating-point throughput (``fastbias.kernels._c.fp_peak_check``: 10
  independent multiply-add chains per iteration, alone and with 4 chains of adds or of
  maxima beside them), in ns per 4-lane multiply-add and what an add and a maximum add to it;
* the floating-point operations of the compiled pass (``fb_ls_linpass_0_2``'s loop over the
  samples, counted in ``objdump``'s disassembly of the extension: multiply-adds and
  multiplies, adds, maxima) and the floor they set at the measured throughput;
* the lock-step kernel itself, 64 runs x 10^5 steps through ``fb.train_batch`` with one and
  with two workers, in ns per run-step, and the share of it the exps alone take.

The goal of issue 12 is 8 ns per run-step on 2 cores. Medians of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
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


def fp_op_ns(which: int, repeat: int) -> float | None:
    """Median ns per iteration of ``fp_peak_check(which)`` on one core."""
    iters = 5_000_000
    if _c.fp_peak_check(1000, which) is None:
        return None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _c.fp_peak_check(iters, which)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / iters * 1e9


FMA_OP = re.compile(r"^v(fn?m(add|sub)\d{3}|mul)pd$")  # the multiply-add pipes' operations
ADD_OP = re.compile(r"^v(add|sub)pd$")
MAX_OP = re.compile(r"^v(max|min)pd$")


def pass_fp_ops(symbol: str = "fb_ls_linpass_0_2") -> tuple[int, int, int] | None:
    """Multiply-adds and multiplies, adds and subtractions, maxima and minima (4-lane
    vector operations) in one trip of ``symbol``'s innermost loop (the shortest conditional backward
    branch), from objdump's disassembly of the C extension; None without objdump."""
    objdump = shutil.which("objdump")
    if objdump is None or not _c.available():
        return None
    import fastbias._cext

    lib = fastbias._cext.__file__
    text = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", lib], capture_output=True, text=True
    ).stdout
    start = text.find(f"<{symbol}>:")
    if start < 0:
        return None
    lines = text[start:].split("\n\n")[0].splitlines()[1:]
    insns = []  # (address, mnemonic, operands)
    for line in lines:
        parts = line.strip().split(None, 2)
        if len(parts) >= 2 and parts[0].endswith(":"):
            insns.append((int(parts[0][:-1], 16), parts[1], parts[2] if len(parts) > 2 else ""))
    loops = [
        (int(ops.split()[0], 16), addr)
        for addr, mn, ops in insns
        if mn.startswith("j") and mn != "jmp" and int(ops.split()[0], 16) < addr
    ]
    if not loops:
        return None
    lo, hi = min(loops, key=lambda r: r[1] - r[0])
    body = [mn for addr, mn, _ in insns if lo <= addr <= hi]
    return tuple(sum(map(bool, map(op.match, body))) for op in (FMA_OP, ADD_OP, MAX_OP))


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
    t_iter = [fp_op_ns(which, args.repeat) for which in (0, 1, 2)]
    t_fma = t_iter[0] / 10
    t_add, t_max = (max(0.0, (t - t_iter[0]) / 4) for t in t_iter[1:])
    print(f"vector throughput, one core: {t_fma:.3f} ns per 4-lane multiply-add; beside them "
          f"an add costs {t_add:.3f} ns more, a maximum {t_max:.3f} ns")  # fmt: skip
    ops = pass_fp_ops()
    fp_floor1 = None
    if ops is not None:
        n_fma, n_add, n_max = ops
        per_vector = n_fma * t_fma + n_add * t_add + n_max * t_max
        fp_floor1 = EXPS_PER_RUN_STEP / 4 * per_vector  # a vector of 4 runs
        floors = f"{fp_floor1:.1f} ns per run-step on one core, {fp_floor1 / 2:.1f} on two"
        print(f"the pass (fb_ls_linpass_0_2), per sample and vector of 4 runs: {n_fma} "
              f"multiply-adds and multiplies, {n_add} adds, {n_max} maxima; at that "
              f"throughput {floors}")  # fmt: skip
    for workers in (1, 2):
        t = lockstep_ns(workers, args.repeat)
        floor = floor1 / workers
        label = f"{workers} worker" + ("s" if workers > 1 else "")
        print(f"lock-step, 64 Figure 3.1 runs, {label}: {t:.1f} ns per run-step "
              f"(exps alone {floor:.1f}, {floor / t:.0%} of it)")  # fmt: skip
        if fp_floor1 is not None:
            print(f"    floating-point floor {fp_floor1 / workers:.1f}: the kernel runs at "
                  f"{fp_floor1 / workers / t:.0%} of the core's vector throughput")  # fmt: skip
    print("issue 12 goal: 8 ns per run-step on 2 cores")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedian of {args.repeat}; load average {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
