"""Per-step time of the compiled optimizers (momentum, Adam, SGD) against NumPy loops.

Linear model, exponential loss, on the Figure 3.1 data (``fastbias.datasets.soudry2018()``,
N = 16, d = 2) and on Gaussian data with N = 200, d = 50. The NumPy loops are the textbook
updates written the way a researcher usually would (one NumPy expression per operation, one
interpreter iteration per step); the compiled GD kernel is included as the reference point.

    pytest bench/bench_optimizers.py          # pytest-benchmark; extra_info["steps"] per call
    python bench/bench_optimizers.py          # a table of us/step and NumPy / compiled ratios
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastbias as fb
from fastbias.models import Linear
from fastbias.optim.optimizers import make_optimizer_runner

X16, Y16 = fb.datasets.soudry2018()
X200, Y200 = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=0)
DATA = {
    "soudry2018 N=16 d=2": np.ascontiguousarray(X16 * Y16[:, None]),
    "gaussian N=200 d=50": np.ascontiguousarray(X200 * Y200[:, None]),
}
OPTIONS = {
    "gd": {},
    "momentum": {"beta": 0.9},
    "adam": {},
    "sgd": {"batch_size": 4, "seed": 0},
}
# steps per timed call: (compiled, numpy), ~0.1-0.5 s each
STEPS = {"soudry2018 N=16 d=2": (200_000, 5_000), "gaussian N=200 d=50": (20_000, 2_000)}


def _lr(Z, optimizer):
    """Stable steps: ``1/sigma_max(Z)**2`` for GD; momentum 0.9 with 10x smaller steps (the
    same effective step); SGD's estimate ``(N/B) sum_batch`` is ``N/B`` times rougher."""
    base = 1.0 / np.linalg.norm(Z, 2) ** 2
    sgd = base * OPTIONS["sgd"]["batch_size"] / Z.shape[0]
    return {"gd": base, "momentum": 0.1 * base, "adam": 1e-3, "sgd": sgd}[optimizer]


def fastbias_job(Z, optimizer, steps):
    """A no-argument callable running ``steps`` compiled steps from w = 0 (warmed up)."""
    if optimizer == "gd":
        runner = Linear().runner(Z, np.zeros(len(Z)), 0, "float64")
    else:
        runner = make_optimizer_runner(
            Linear(), Z, np.zeros(len(Z)), 0, optimizer, OPTIONS[optimizer]
        )
    lr = _lr(Z, optimizer)
    sched = np.zeros(0, dtype=np.int64)
    rec = np.zeros((0, Z.shape[1]))

    def go():
        if optimizer != "gd":
            runner.reset()
        w = np.zeros(Z.shape[1])
        runner(w, lr, 0, 0, steps, sched, rec, -1e300)
        return w

    go()
    return go


def numpy_job(Z, optimizer, steps):
    """The same run as a NumPy loop (textbook formulas, ``grad = -Z^T exp(-Z w)``)."""
    lr = _lr(Z, optimizer)
    N, d = Z.shape
    batch = OPTIONS["sgd"]["batch_size"]

    def go():
        w = np.zeros(d)
        m = np.zeros(d)
        v = np.zeros(d)
        rng = np.random.default_rng(0)
        perm = rng.permutation(N)
        for t in range(steps):
            if optimizer == "sgd":
                pos = (t * batch) % N  # batch divides N for both data sets
                if pos == 0 and t > 0:
                    perm = rng.permutation(N)
                Zb = Z[perm[pos : pos + batch]]
                w += (lr * N / batch) * (Zb.T @ np.exp(-(Zb @ w)))
                continue
            g = -(Z.T @ np.exp(-(Z @ w)))
            if optimizer == "gd":
                w -= lr * g
            elif optimizer == "momentum":
                m = 0.9 * m - lr * g
                w += m
            else:
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * g * g
                w -= lr * (m / (1 - 0.9 ** (t + 1))) / (np.sqrt(v / (1 - 0.999 ** (t + 1))) + 1e-8)
        return w

    return go


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("optimizer", list(OPTIONS))
@pytest.mark.parametrize("backend", ["fastbias", "numpy"])
def test_optimizer_step(benchmark, data, optimizer, backend):
    benchmark.group = f"{optimizer} exp-loss linear step, {data}"
    Z = DATA[data]
    steps = STEPS[data][0 if backend == "fastbias" else 1]
    fn = (
        fastbias_job(Z, optimizer, steps)
        if backend == "fastbias"
        else numpy_job(Z, optimizer, steps)
    )
    benchmark.extra_info["steps"] = steps
    benchmark(fn)


def _best(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    print(
        f"{'data':<22} {'optimizer':<9} {'compiled us/step':>17} {'numpy us/step':>14} {'ratio':>7}"
    )
    for name, Z in DATA.items():
        for optimizer in OPTIONS:
            n_fast, n_slow = STEPS[name]
            fast = _best(fastbias_job(Z, optimizer, n_fast)) / n_fast
            slow = _best(numpy_job(Z, optimizer, n_slow)) / n_slow
            print(
                f"{name:<22} {optimizer:<9} {fast * 1e6:>17.3f} {slow * 1e6:>14.2f} "
                f"{slow / fast:>7.0f}"
            )


if __name__ == "__main__":
    main()
