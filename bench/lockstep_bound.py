"""What bounds the lock-step batches (issue 12, item 4): the Figure 3.1 data, Diagonal(2), FC.

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
* the floating-point operations of the compiled pass (``fb_ls_linpass_0_2_0``'s loop over the
  samples, counted in ``objdump``'s disassembly of the extension: multiply-adds and
  multiplies, adds, maxima) and the floor they set at the measured throughput;
* the same throughput with both cores at it (two threads, one ``fp_peak_check`` each): the
  floors on two cores use this, not half the one-core figure;
* the lock-step kernel itself, 64 runs x 10^5 steps through ``fb.train_batch`` with one and
  with two workers, in ns per run-step, and the share of it the exps alone take;
* for ``Diagonal(2)`` and ``FullyConnected([50])`` (d = 50, N = 200, 64 runs, 3000 steps, 2
  workers: the batches of ``bench_models.py::test_train_batch_64_deep_runs``): the
  multiply-adds and multiplies of a run-step in the lock-step kernel (counted from its loops,
  ``deep_fma_per_run_step``), the floor they set on two cores, and, measured here, whole
  batches on the one-run-per-thread path and in lock step, alternating, and the lock-step
  kernel's share of its batch: 3x the thread path needs the batch at threads / 3, so the
  kernel at that less the Python around it, printed as a share of the floor's speed (a kernel
  at the floor would be 100%).

The goals of issue 12 are 8 ns per run-step on 2 cores for the Figure 3.1 runs and 3x the
thread path's throughput for the deep sweeps. Medians of ``--repeat`` rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import threading
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


def fp_peak_one_and_two_cores_ns(repeat: int) -> tuple[float, float] | None:
    """Median ns per 4-lane multiply-add on one core, and of both cores together (two threads
    each run ``fp_peak_check(0)``; cffi releases the GIL), timed in alternating rounds so that
    both see the same machine."""
    iters = 50_000_000  # ~0.1 s a round: a thread's start is noise beside it
    if _c.fp_peak_check(1000, 0) is None:
        return None
    one, two = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _c.fp_peak_check(iters, 0)
        one.append(time.perf_counter() - t0)
        threads = [threading.Thread(target=_c.fp_peak_check, args=(iters, 0)) for _ in range(2)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        two.append(time.perf_counter() - t0)
    return (statistics.median(one) / (10 * iters) * 1e9,
            statistics.median(two) / (2 * 10 * iters) * 1e9)  # fmt: skip


def deep_fma_per_run_step(model: str, N: int, d: int, width: int, exp_ops: int) -> int:
    """Multiply-adds and multiplies (one lane each) of one run-step of ``fb_ls_block`` in
    csrc/fb_lockstep_f64.c, exponential loss, direct mode, rule 0, for ``"diag"``
    (``Diagonal(2)``, parameters w_1, w_2 of length d) or ``"fc"`` (``FullyConnected([width])``:
    a d x width matrix W and a vector v), term by term in the kernel's order."""
    samples = N * d + N * exp_ops + N * d  # margins Z beta, weights, G = Z^T q (fb_ls_dot2)
    if model == "diag":
        L = 2
        predictor = d * (L - 1)  # beta = w_1 w_2
        vjp = d * (L - 1) + L * d + L * d  # x = prefix suf, suf *= w, ||g||^2
        update = 2 * L * d  # w += c g, ||theta||^2
    else:
        predictor = d * width  # W v
        vjp = d * width + d + width  # W^T a, ||a||^2, ||v||^2
        update = d + 2 * d * width + 2 * width  # c a, W += c a v^T and ||W||^2, v likewise
    return predictor + samples + vjp + update


def deep_batches_us(model: str, repeat: int) -> tuple[list[float], list[float], list[float]]:
    """us per run-step of whole ``train_batch`` calls, 64 runs (seeds), N = 200, d = 50, 3000
    steps, 2 workers, one run per thread (``lockstep_eligible`` patched to refuse) and in lock
    step, in alternating rounds: (threads, lock step, the lock-step kernel alone), ``repeat``
    rounds each."""
    import fastbias.optim.batch as batch
    import fastbias.optim.lockstep as lockstep_mod
    from fastbias.models import Diagonal, FullyConnected

    X, y = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=2)
    mdl = Diagonal(2) if model == "diag" else FullyConnected([50])
    kw = dict(model=mdl, lr=1e-3 if model == "diag" else 1e-4, reference=None, record=2,
              n_workers=2)  # fmt: skip
    eligible, fc_max = batch.lockstep_eligible, lockstep_mod._FC_MAX_PARAMS
    # (lock step for the FC runs too, past the size where train_batch leaves them to threads)
    lockstep_mod._FC_MAX_PARAMS = 10**9
    refuse = lambda *a, **k: False  # noqa: E731
    times: tuple[list[float], list[float], list[float]] = ([], [], [])
    try:
        for r in range(repeat + 1):
            for mode in (0, 1):
                batch.lockstep_eligible = refuse if mode == 0 else eligible
                t0 = time.perf_counter()
                fb.train_batch(X, y, seeds=range(64), steps=3000 if r else 10, **kw)
                if r:  # (round 0 warms up)
                    times[mode].append((time.perf_counter() - t0) / (64 * 3000) * 1e6)
                    if mode == 1:
                        kernel = lockstep_mod._LAST_KERNEL_SECONDS[0]
                        times[2].append(kernel / (64 * 3000) * 1e6)
    finally:
        batch.lockstep_eligible, lockstep_mod._FC_MAX_PARAMS = eligible, fc_max
    return times


FMA_OP = re.compile(r"^v(fn?m(add|sub)\d{3}|mul)pd$")  # the multiply-add pipes' operations
ADD_OP = re.compile(r"^v(add|sub)pd$")
MAX_OP = re.compile(r"^v(max|min)pd$")


def pass_fp_ops(symbol: str = "fb_ls_linpass_0_2_0") -> tuple[int, int, int] | None:
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
    t_iter = [fp_op_ns(which, args.repeat) for which in (0, 1, 2)]
    t_fma, t_fma2 = fp_peak_one_and_two_cores_ns(args.repeat)
    scale2 = t_fma2 / t_fma  # a two-core floor is the one-core floor times this
    floor1 = EXPS_PER_RUN_STEP * t_exp
    print(f"fb_exp_fma, one core: {t_exp:.3f} ns per exp, {4 * t_exp:.2f} ns per 4-lane vector")
    print(f"floor from the exps alone ({EXPS_PER_RUN_STEP} per run-step): "
          f"{floor1:.1f} ns per run-step on one core, {floor1 * scale2:.1f} ns on two")  # fmt: skip
    t_add, t_max = (max(0.0, (t - t_iter[0]) / 4) for t in t_iter[1:])
    print(f"vector throughput, one core: {t_fma:.3f} ns per 4-lane multiply-add; beside them "
          f"an add costs {t_add:.3f} ns more, a maximum {t_max:.3f} ns")  # fmt: skip
    print(f"both cores at once: {t_fma2:.3f} ns per 4-lane multiply-add "
          f"({t_fma / t_fma2:.2f}x one core)")  # fmt: skip
    if t_fma2 > 0.75 * t_fma:
        print("    (both cores ran at less than 1.33x one core: is something else running?)")
    ops = pass_fp_ops()
    fp_floor1, exp_ops = None, 16
    if ops is not None:
        n_fma, n_add, n_max = ops
        exp_ops = n_fma - 2 * 2  # the pass at d = 2: 2 for the margin, 2 for G, the rest exp
        per_vector = n_fma * t_fma + n_add * t_add + n_max * t_max
        fp_floor1 = EXPS_PER_RUN_STEP / 4 * per_vector  # a vector of 4 runs
        floors = f"{fp_floor1:.1f} ns per run-step on one core, {fp_floor1 * scale2:.1f} on two"
        print(f"the pass (fb_ls_linpass_0_2_0), per sample and vector of 4 runs: {n_fma} "
              f"multiply-adds and multiplies, {n_add} adds, {n_max} maxima; at that "
              f"throughput {floors}")  # fmt: skip
    for workers in (1, 2):
        t = lockstep_ns(workers, args.repeat)
        scale = 1.0 if workers == 1 else scale2
        floor = floor1 * scale
        label = f"{workers} worker" + ("s" if workers > 1 else "")
        print(f"lock-step, 64 Figure 3.1 runs, {label}: {t:.1f} ns per run-step "
              f"(exps alone {floor:.1f}, {floor / t:.0%} of it)")  # fmt: skip
        if fp_floor1 is not None:
            print(f"    floating-point floor {fp_floor1 * scale:.1f}: the kernel runs at "
                  f"{fp_floor1 * scale / t:.0%} of the cores' vector throughput")  # fmt: skip
    print("issue 12 goal: 8 ns per run-step on 2 cores")
    print("\n64 runs, d = 50, N = 200, 3000 steps, 2 workers (us per run-step):")
    for model, name in (("diag", "Diagonal(2)"), ("fc", "FullyConnected([50])")):
        ops = deep_fma_per_run_step(model, 200, 50, 50, exp_ops)
        floor2 = ops / 4 * t_fma2 / 1e3
        threads, lock, kernel = deep_batches_us(model, args.repeat)
        t_med, l_med, k_med = (statistics.median(t) for t in (threads, lock, kernel))
        need = t_med / 3 - (l_med - k_med)  # the kernel's time left by 3x and the Python
        print(f"{name}: {ops} multiply-adds and multiplies per run-step, floor {floor2:.3f} on "
              f"two cores\n    threads {min(threads):.3f} / {t_med:.3f}, lock step "
              f"{min(lock):.3f} / {l_med:.3f} (min / median; {t_med / l_med:.2f}x), of which "
              f"the kernel {k_med:.3f} ({floor2 / k_med:.0%} of the floor's speed)")  # fmt: skip
        if need > 0:
            print(f"    3x needs the batch at {t_med / 3:.3f}: the kernel at {need:.3f}, "
                  f"{floor2 / need:.0%} of the floor's speed")  # fmt: skip
        else:
            print(f"    3x needs the batch at {t_med / 3:.3f}: less than its Python alone")
        print(f"    a kernel at the floor with no Python around it: {t_med / floor2:.2f}x")
    print("issue 12 goal: 3x the thread path")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nmedian of {args.repeat}; load average {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
