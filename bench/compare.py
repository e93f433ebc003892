"""Side-by-side timing of the same GD job in fastbias and the usual alternatives, in one process.

    python bench/compare.py            # prints a table of time per step and ratios

Each backend runs enough steps to take ~0.2-2 s; the best of ``--repeat`` runs is reported.
PyTorch rows appear when torch is installed (``pip install '.[torch]'`` pins the CPU build).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from baselines import numpy_gd_linear, torch_available, torch_gd_linear

import fastbias as fb
from fastbias.kernels import _numba


def _best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _kernel(kernel, Z, lr, steps, dtype=np.float64):
    Zk = np.ascontiguousarray(Z, dtype=dtype)
    rec = np.zeros((0, Z.shape[1]), dtype=dtype)
    sched = np.zeros(0, dtype=np.int64)

    def go():
        w = np.zeros(Z.shape[1], dtype=dtype)
        kernel(Zk, w, lr, 0, 0, 0, steps, sched, rec, -1e300)

    return go


def jobs():
    X, y = fb.datasets.soudry2018()
    small = np.ascontiguousarray(X * y[:, None])
    X, y = fb.datasets.separable_gaussian(1000, 100, margin=0.1, seed=0)
    large = np.ascontiguousarray(X * y[:, None])
    out = []
    for name, Z, steps in (
        ("soudry2018 N=16 d=2", small, {"fast": 2 * 10**6, "numpy": 20000, "torch": 2000}),
        ("gaussian N=1000 d=100", large, {"fast": 2000, "numpy": 200, "torch": 200}),
    ):
        lr = 1.0 / np.linalg.norm(Z, 2) ** 2
        rows = [
            (
                "fastbias numba float64",
                _kernel(_numba.gd_linear, Z, lr, steps["fast"]),
                steps["fast"],
            )
        ]
        try:
            from fastbias.kernels import _c

            if _c.available():
                if hasattr(_c, "gd_linear_float64"):
                    rows.append(
                        (
                            "fastbias C float64",
                            _kernel(_c.gd_linear_float64, Z, lr, steps["fast"]),
                            steps["fast"],
                        )
                    )
                n_ext = max(steps["fast"] // 20, 10)
                rows.append(
                    (
                        "fastbias C extended",
                        _kernel(_c.gd_linear_extended, Z, lr, n_ext, np.longdouble),
                        n_ext,
                    )
                )
        except ImportError:
            pass
        rows.append(
            (
                "NumPy loop",
                lambda Z=Z, lr=lr, n=steps["numpy"]: numpy_gd_linear(
                    Z, np.zeros(Z.shape[1]), lr, n
                ),
                steps["numpy"],
            )
        )
        if torch_available():
            rows.append(
                (
                    "PyTorch eager (CPU)",
                    lambda Z=Z, lr=lr, n=steps["torch"]: torch_gd_linear(
                        Z, np.zeros(Z.shape[1]), lr, n
                    ),
                    steps["torch"],
                )
            )
        out.append((name, rows))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, rows in jobs():
        print(f"\n{name}: exp-loss GD, time per step (best of {args.repeat})")
        results = [(label, _best(fn, args.repeat) / steps) for label, fn, steps in rows]
        # ratios against fastbias's default float64 kernel (C when built, else numba)
        default = dict(results).get("fastbias C float64", results[0][1])
        for label, per in results:
            unit = f"{per * 1e9:10.1f} ns" if per < 1e-5 else f"{per * 1e6:10.2f} us"
            print(f"  {label:<26} {unit}   {per / default:8.2f}x the default kernel's time")


if __name__ == "__main__":
    main()
