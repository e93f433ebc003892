"""pytest-benchmark suite for ReLU networks (issue 6): one GD step of a depth-2 ReLU network with
100 hidden neurons, d = 20, N = 200, exponential loss.

Three rows in one group, all measured in the same run:

* ``fastbias``: the compiled ``Network.runner_xy`` run (forward and backward in numba, the
  dense layers through BLAS with ``out=``), ``STEPS_FAST`` steps per call;
* ``numpy_products``: only the matrix products of one step done by NumPy's BLAS
  (``X W^T``, ``D^T X``, ``H v``, ``H^T q``): the target is fastbias within 1.5x of this;
* ``torch``: the same step in PyTorch eager mode with autograd (float64, CPU, default threads;
  ``torch_1thread`` pins one thread, which is faster on a busy machine): the target is fastbias
  at least 3x faster.

``extra_info["steps"]`` is the number of steps per call and ``extra_info["per_step_us"]`` the
mean time per step. Run: ``pytest bench/bench_network.py --benchmark-only``.
"""

import numpy as np
import pytest

from fastbias.models.network import Network

N, D, K = 200, 20, 100
RNG = np.random.default_rng(0)
X = RNG.standard_normal((N, D))
Y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, 1.0, -1.0)
W0 = RNG.standard_normal((K, D)) / np.sqrt(D)
V0 = RNG.standard_normal(K) / np.sqrt(K)
LR = 2e-5
NET = Network.fully_connected(D, [K], "relu")
THETA0 = np.concatenate([W0.ravel(), V0])  # [w_1, ..., w_K, v]
STEPS_FAST, STEPS_SLOW = 2000, 200


def fastbias_run(steps):
    run = NET.runner_xy(X, Y, 0)
    rec = np.zeros((0, THETA0.size))
    sched = np.zeros(0, dtype=np.int64)

    def go():
        theta = THETA0.copy()
        status, _ = run(theta, LR, 0, 0, steps, sched, rec, -1e300)
        assert status == 0  # a diverged run would stop early and time nothing
        return theta

    go()  # compile / load from cache
    return go


def numpy_products(steps):
    """The step's matrix products alone: forward ``A = X W^T``, ``out = H v``; backward
    ``G_W = D^T X``, ``G_v = H^T q`` (``H``, ``D`` (N, K), ``q`` (N,) fixed)."""
    H = np.maximum(X @ W0.T, 0.0)
    Dm = RNG.standard_normal((N, K))
    q = RNG.random(N)

    def go():
        for _ in range(steps):
            X @ W0.T
            H @ V0
            Dm.T @ X
            H.T @ q

    return go


def torch_run(steps, threads=None):
    import torch

    Xt = torch.from_numpy(X)
    Yt = torch.from_numpy(Y)

    def go():
        old = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return _steps()
        finally:
            torch.set_num_threads(old)

    def _steps():
        W = torch.tensor(W0, requires_grad=True)
        v = torch.tensor(V0, requires_grad=True)
        for _ in range(steps):
            out = torch.relu(Xt @ W.T) @ v
            loss = torch.exp(-(Yt * out)).sum()
            loss.backward()
            with torch.no_grad():
                W -= LR * W.grad
                v -= LR * v.grad
                W.grad.zero_()
                v.grad.zero_()
        return W.detach().numpy(), v.detach().numpy()

    return go


def test_same_step():
    """The three rows time the same GD step: fastbias and torch agree after 50 steps."""
    pytest.importorskip("torch")
    W, v = torch_run(STEPS_FAST)()
    theta = fastbias_run(STEPS_FAST)()
    assert np.linalg.norm(theta - THETA0) > 0.1  # the runs go somewhere
    np.testing.assert_allclose(theta, np.concatenate([W.ravel(), v]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["fastbias", "numpy_products", "torch", "torch_1thread"])
def test_relu_depth2_step(benchmark, backend):
    benchmark.group = f"ReLU depth-2 GD step, K={K} hidden, d={D}, N={N}, exp loss"
    if backend == "fastbias":
        steps, fn = STEPS_FAST, fastbias_run(STEPS_FAST)
    elif backend == "numpy_products":
        steps, fn = STEPS_SLOW, numpy_products(STEPS_SLOW)
    else:
        pytest.importorskip("torch")
        threads = 1 if backend == "torch_1thread" else None
        steps, fn = STEPS_SLOW, torch_run(STEPS_SLOW, threads)
    benchmark.extra_info["steps"] = steps
    benchmark(fn)
    benchmark.extra_info["per_step_us"] = benchmark.stats.stats.mean / steps * 1e6
