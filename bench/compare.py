"""Side-by-side timing of the same GD jobs in fastbias and the baselines a researcher would
pick instead, in one process, reported as ratios to fastbias.

    python bench/compare.py                 # the table (time per step, ratios)
    python bench/compare.py --markdown      # the same as the README's Markdown table
    python bench/compare.py --jobs fc conv  # some jobs only

Jobs (bench/jobs.py): exp-loss GD with fixed steps on the linear model (Figure 3.1 data and a
Gaussian N=1000, d=100), FullyConnected([50]), Diagonal(2), full-width Convolutional(3) and an
order-3 tensor network. Baselines: the plain C loop of bench/cloops.c (compiled here with
-O3 -march=native -ffast-math), a NumPy loop, PyTorch eager with autograd (torch==2.13.0,
CPU) and JAX (jit of lax.fori_loop over jax.grad steps, CPU, float64). Every implementation's
final parameters are checked against fastbias's before timing (``agrees`` column). fastbias and
the C loop record the parameters 10 times per decade and run the divergence tests; the NumPy,
PyTorch and JAX loops do neither. One thread everywhere (fastbias's float64 kernels decide for
themselves only on large linear problems: the N=1000 job may use both cores; PyTorch and JAX
are limited to one intra-op thread here). Each row is the median of ``--repeat`` runs after a
warm-up (JIT compilation excluded); the machine's load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import cloops  # noqa: E402
import jobs as job_defs  # noqa: E402
import numpy as np  # noqa: E402
from baselines import jax_available, torch_available  # noqa: E402

BACKENDS = ["fastbias", "cloop", "numpy", "torch", "jax"]
LABELS = {"fastbias": "fastbias", "cloop": "C loop", "numpy": "NumPy", "torch": "PyTorch",
          "jax": "JAX"}  # fmt: skip
STEP_KEY = {"fastbias": "fast", "cloop": "fast", "numpy": "numpy", "torch": "torch", "jax": "jax"}
SHORT = {"linear, Figure 3.1": "soudry", "linear, N=1000": "gauss", "FullyConnected": "fc",
         "Diagonal": "diag", "Convolutional": "conv", "Tensor": "tensor"}  # fmt: skip


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _available(backend: str) -> bool:
    if backend == "cloop":
        return cloops.available()
    if backend == "torch":
        if not torch_available():
            return False
        import torch

        torch.set_num_threads(1)
        return True
    if backend == "jax":
        return jax_available()
    return True


def _short(job) -> str:
    return next(v for k, v in SHORT.items() if job.name.startswith(k))


def run(selected: list[str] | None, repeat: int) -> list[tuple[str, dict[str, tuple]]]:
    """For each job: backend -> (seconds per step, agrees with fastbias)."""
    rows = []
    for job in job_defs.all_jobs():
        if selected and _short(job) not in selected:
            continue
        ref = job.fastbias(job.steps["numpy"])()  # the comparison point for the check
        out = {}
        for backend in BACKENDS:
            if not _available(backend):
                continue
            steps = job.steps[STEP_KEY[backend]]
            fn = getattr(job, backend)(steps)
            check = getattr(job, backend)(job.steps["numpy"])()
            agrees = bool(np.abs(check - ref).max() <= 1e-8 * np.abs(ref).max())
            out[backend] = (_median_time(fn, repeat) / steps, agrees)
        rows.append((job.name, out))
    return rows


def _fmt(sec: float) -> str:
    return f"{sec * 1e9:.0f} ns" if sec < 1e-6 else f"{sec * 1e6:.2f} us"


def table(rows, markdown: bool) -> str:
    head = ["job", *[LABELS[b] for b in BACKENDS]]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
    for name, out in rows:
        fast = out["fastbias"][0]
        cells = [name]
        for b in BACKENDS:
            if b not in out:
                cells.append("-")
                continue
            sec, ok = out[b]
            mark = "" if ok else " (!)"
            cells.append(
                _fmt(sec) + mark if b == "fastbias" else f"{_fmt(sec)} ({sec / fast:.2g}x){mark}"
            )
        if markdown:
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"{cells[0]:<46}" + "".join(f"{c:>24}" for c in cells[1:]))
    if not markdown:
        lines.insert(0, f"{'job (time per GD step)':<46}" + "".join(f"{h:>24}" for h in head[1:]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--jobs", nargs="*", choices=sorted(set(SHORT.values())))
    args = parser.parse_args()
    rows = run(args.jobs, args.repeat)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(table(rows, args.markdown))
    print(f"\nmedian of {args.repeat}; (Nx) = N times fastbias's time per step; (!) = final "
          f"parameters differ from fastbias's by more than 1e-8; load average {load:.2f} "
          f"on {os.cpu_count()} cores")  # fmt: skip


if __name__ == "__main__":
    main()
