"""pytest-benchmark suite for the softmax-network kernel (Soudry et al. 2018, Section 4.3 target):
GD steps of a depth-2 ReLU network, d = 64, H = 100, C = 10 outputs, N = 1198 (the size of the
``soudry2018-table1`` run on scikit-learn's digits), BLAS pinned to one thread.

Rows of one group, measured in the same run:

* ``blas``: ``_numba_softmax_net.softmax_net_run`` (the four products through ``np.dot`` with
  ``out=``), the kernel the package uses;
* ``loops``: the same step with the forward and backward products as hand-written numba loops
  (``fastmath`` reassociation so LLVM vectorizes them), defined below for this comparison;
* ``numpy``: the NumPy reference step (``_reference_softmax_net``), one Python call per step.

Measured when the kernel was written (thread CPU time per step, best of 5, machine at load ~9
on 2 cores, so wall times are noise): BLAS 2.1-2.5 ms, loops 3.2-3.7 ms (forward alone 0.68 vs
1.21 ms, backward 1.05 vs 1.65 ms); BLAS kept. Without the one-thread limit the BLAS step took
13 ms of CPU and 70 ms of wall time at that load (threads fighting for the cores).
``extra_info["per_step_ms"]``: mean time per step. Run:
``pytest bench/bench_softmax_net.py --benchmark-only``.
"""

import math

import numpy as np
import pytest
from numba import njit
from threadpoolctl import threadpool_limits

from fastbias.kernels import _reference_softmax_net as R
from fastbias.kernels._numba import _FAST
from fastbias.kernels._numba_softmax_net import loss_gradient, softmax_net_run

N, D, H, C = 1198, 64, 100, 10
RNG = np.random.default_rng(0)
X = np.ascontiguousarray(RNG.integers(0, 17, size=(N, D)) / 16.0)
Y = RNG.integers(0, C, size=N).astype(np.int64)
W1 = RNG.standard_normal((H, D)) * math.sqrt(2 / D)
W2 = RNG.standard_normal((C, H)) / math.sqrt(H)
LR = 0.05
STEPS = 20


@njit(nogil=True, cache=True, fastmath=_FAST)
def _loops_run(X, labels, W1, W2, lr, n_steps):
    N, d = X.shape
    H = W1.shape[0]
    C = W2.shape[0]
    A = np.empty((N, H))
    Hr = np.empty((N, H))
    F = np.empty((N, C))
    G = np.empty((N, C))
    gW1 = np.empty((H, d))
    gW2 = np.empty((C, H))
    dh = np.empty(H)
    u = np.empty(C)
    for _ in range(n_steps):
        for n in range(N):
            for j in range(H):
                s = 0.0
                for i in range(d):
                    s += X[n, i] * W1[j, i]
                A[n, j] = s
                Hr[n, j] = s if s > 0.0 else 0.0
            for c in range(C):
                s = 0.0
                for j in range(H):
                    s += Hr[n, j] * W2[c, j]
                F[n, c] = s
        loss_gradient(F, labels, G, u)
        gW1[:] = 0.0
        gW2[:] = 0.0
        for n in range(N):
            for c in range(C):
                g = G[n, c]
                for j in range(H):
                    gW2[c, j] += g * Hr[n, j]
            dh[:] = 0.0
            for c in range(C):
                g = G[n, c]
                for j in range(H):
                    dh[j] += g * W2[c, j]
            for j in range(H):
                if A[n, j] > 0.0:
                    v = dh[j]
                    for i in range(d):
                        gW1[j, i] += v * X[n, i]
        W1 -= lr * gW1
        W2 -= lr * gW2


def _blas():
    a, b = W1.copy(), W2.copy()
    va, vb = np.zeros_like(a), np.zeros_like(b)
    softmax_net_run(X, Y, a, b, va, vb, LR, 0.0, 0, STEPS, np.zeros(0, np.int64),
                    np.zeros((0, a.size + b.size)), 1e9)  # fmt: skip
    return a


def _loops():
    a, b = W1.copy(), W2.copy()
    _loops_run(X, Y, a, b, LR, STEPS)
    return a


def _numpy():
    a, b = W1.copy(), W2.copy()
    for _ in range(STEPS):
        g1, g2, _ = R.softmax_net_step(X, Y, a, b)
        a -= LR * g1
        b -= LR * g2
    return a


@pytest.mark.parametrize("name", ["blas", "loops", "numpy"])
def test_softmax_net_step(benchmark, name):
    fn = {"blas": _blas, "loops": _loops, "numpy": _numpy}[name]
    benchmark.group = "softmax network step (N=1198, d=64, H=100, C=10)"
    with threadpool_limits(limits=1, user_api="blas"):
        ref = _blas()
        np.testing.assert_allclose(fn(), ref, rtol=1e-9, atol=1e-12)  # same run, same result
        benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["steps"] = STEPS
    benchmark.extra_info["per_step_ms"] = benchmark.stats.stats.mean / STEPS * 1e3
