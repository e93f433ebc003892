"""Theorem 4's residual r(t) = w(t) - w_hat log t - w_tilde on soudry2018() after 10^8 steps,
in float64, compensated and extended precision (issue 5). Takes ~2.5 min (extended: 1.25 us
per step). Run: ``python bench/precision_horizon.py [steps]``."""

import sys
import time

import numpy as np

import fastbias as fb


def main(steps: int = 10**8) -> None:
    X, y = fb.datasets.soudry2018()
    svm = fb.max_margin(X, y)
    lr = 1.0 / np.linalg.norm(X, 2) ** 2
    w_tilde = np.asarray(svm.w_tilde(lr, np.zeros(2)), dtype=np.longdouble)
    w_hat = np.asarray(svm.coef, dtype=np.longdouble)
    out = {}
    for precision in ("float64", "compensated", "extended"):
        t0 = time.perf_counter()
        run = fb.train(X, y, steps=steps, lr=lr, precision=precision, record=1)
        w = np.asarray(run.params[0], dtype=np.longdouble)
        out[precision] = w
        r = w - w_hat * np.log(np.longdouble(steps)) - w_tilde
        print(
            f"{precision:>11}: {time.perf_counter() - t0:7.1f} s  w(T) = {w}  "
            f"||r(T)|| = {float(np.linalg.norm(r)):.6e}"
        )
    for precision in ("float64", "compensated"):
        diff = float(np.max(np.abs(out[precision] - out["extended"])))
        print(f"max |w_{precision} - w_extended| = {diff:.3e}")


if __name__ == "__main__":
    main(int(float(sys.argv[1])) if len(sys.argv) > 1 else 10**8)
