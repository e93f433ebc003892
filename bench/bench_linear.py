"""pytest-benchmark suite for the linear GD engine (issue: foundation).

Run: ``pytest bench/ --benchmark-only``. Each group times fastbias's compiled run next to a
NumPy loop and PyTorch eager (if installed) doing the same job; steps are chosen per backend
so each call takes milliseconds, and ``extra_info["steps"]`` lets the report show time per step.
"""

import numpy as np
import pytest
from baselines import numpy_gd_linear, torch_available, torch_gd_linear

import fastbias as fb
from fastbias.kernels import _numba

SOUDRY = fb.datasets.soudry2018()
GAUSS = fb.datasets.separable_gaussian(1000, 100, margin=0.1, seed=0)


def _Z(data):
    X, y = data
    return np.ascontiguousarray(X * y[:, None])


def _kernel_run(kernel, Z, steps, dtype=np.float64):
    Zk = np.ascontiguousarray(Z, dtype=dtype)
    lr = 1.0 / np.linalg.norm(Z, 2) ** 2
    rec = np.array([steps], dtype=np.int64)

    def go():
        w = np.zeros(Z.shape[1], dtype=dtype)
        kernel(Zk, w, lr, 0, 0, 0, steps, rec, np.zeros((1, Z.shape[1]), dtype=dtype), -1e300)
        return w

    go()  # compile / warm up
    return go


def _per_step(benchmark, steps):
    benchmark.extra_info["steps"] = steps


def _c_float64():
    pytest.importorskip("fastbias._cext")
    from fastbias.kernels import _c

    return _c.gd_linear_float64


@pytest.mark.parametrize("backend", ["fastbias-c", "fastbias-numba", "numpy", "torch"])
def test_soudry2018_step(benchmark, backend):
    benchmark.group = "linear exp-loss GD step, soudry2018 (N=16, d=2)"
    Z = _Z(SOUDRY)
    lr = 1.0 / np.linalg.norm(Z, 2) ** 2
    if backend == "fastbias-c":
        steps = 10**6
        fn = _kernel_run(_c_float64(), Z, steps)
    elif backend == "fastbias-numba":
        steps = 10**6
        fn = _kernel_run(_numba.gd_linear, Z, steps)
    elif backend == "numpy":
        steps = 2000
        fn = lambda: numpy_gd_linear(Z, np.zeros(2), lr, steps)  # noqa: E731
    else:
        if not torch_available():
            pytest.skip("PyTorch not installed (pip install '.[torch]')")
        steps = 200
        fn = lambda: torch_gd_linear(Z, np.zeros(2), lr, steps)  # noqa: E731
    _per_step(benchmark, steps)
    benchmark(fn)


def test_soudry2018_extended_step(benchmark):
    pytest.importorskip("fastbias._cext")
    from fastbias.kernels import _c

    benchmark.group = "linear exp-loss GD step, soudry2018, extended precision"
    steps = 10**5
    _per_step(benchmark, steps)
    benchmark(_kernel_run(_c.gd_linear_extended, _Z(SOUDRY), steps, np.longdouble))


@pytest.mark.parametrize("backend", ["fastbias-c", "fastbias-numba", "numpy", "torch"])
def test_gaussian_1000x100_step(benchmark, backend):
    benchmark.group = "linear exp-loss GD step, separable Gaussian N=1000, d=100"
    Z = _Z(GAUSS)
    lr = 1.0 / np.linalg.norm(Z, 2) ** 2
    if backend == "fastbias-c":
        steps = 500
        fn = _kernel_run(_c_float64(), Z, steps)
    elif backend == "fastbias-numba":
        steps = 200
        fn = _kernel_run(_numba.gd_linear, Z, steps)
    elif backend == "numpy":
        steps = 50
        fn = lambda: numpy_gd_linear(Z, np.zeros(100), lr, steps)  # noqa: E731
    else:
        if not torch_available():
            pytest.skip("PyTorch not installed (pip install '.[torch]')")
        steps = 50
        fn = lambda: torch_gd_linear(Z, np.zeros(100), lr, steps)  # noqa: E731
    _per_step(benchmark, steps)
    benchmark(fn)


def test_train_demo_end_to_end(benchmark):
    """What ``fastbias demo`` computes: 10^6 steps + exact SVM + history (no plotting)."""
    benchmark.group = "fastbias.train, soudry2018, 10^6 steps, end to end"
    X, y = SOUDRY
    lr = 1.0 / np.linalg.norm(X, 2)
    fb.train(X, y, steps=1000, lr=lr)
    benchmark.extra_info["steps"] = 10**6
    benchmark(lambda: fb.train(X, y, steps=10**6, lr=lr))


@pytest.mark.parametrize("threads", ["automatic", "one"])
def test_train_ten_calls_in_a_row_1000x100(benchmark, threads):
    """Ten ``train`` calls of 1000 steps one after the other (a sweep), N=1000, d=100: the
    C kernel's automatic OpenMP threads against one thread. Each call's history runs on one
    BLAS thread (``fastbias._blas``); before, idle OpenBLAS threads spinning after it slowed
    the next call's kernel threads 3x (590-950 ms against 200-260 ms)."""
    from fastbias.kernels import C_THREADS

    benchmark.group = "fastbias.train x 10 in a row, N=1000, d=100, 1000 steps each"
    X, y = GAUSS
    fb.train(X, y, steps=10)  # compile, solve and cache the reference
    token = C_THREADS.set(0 if threads == "automatic" else 1)
    try:
        benchmark.pedantic(
            lambda: [fb.train(X, y, steps=1000) for _ in range(10)], rounds=5, iterations=1
        )
    finally:
        C_THREADS.reset(token)


def test_max_margin_1000x100(benchmark):
    benchmark.group = "max_margin (exact L2 SVM), N=1000, d=100"
    X, y = GAUSS
    benchmark(lambda: fb.max_margin(X, y))


_FIRST_STEP = """
import time
t0 = time.perf_counter()
import numpy as np
import fastbias as fb
from fastbias.optim.history import checkpoint_steps
X, y = fb.datasets.soudry2018()
fb.train(X, y, steps=1, reference=None)
print(time.perf_counter() - t0)
"""


@pytest.mark.parametrize("backend", ["default", "numba"])
def test_time_to_first_step_in_a_new_process(benchmark, backend):
    """What `fastbias demo` pays before its first step: imports plus loading cached kernels."""
    import os
    import subprocess
    import sys

    benchmark.group = "new process: import fastbias + first compiled step (cache warm)"
    env = dict(os.environ)
    if backend == "numba":
        env["FASTBIAS_BACKEND"] = "numba"
    run = lambda: subprocess.run([sys.executable, "-c", _FIRST_STEP], check=True, env=env)  # noqa: E731
    run()  # make sure the cache is warm
    benchmark.pedantic(run, rounds=3, iterations=1)
