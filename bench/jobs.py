"""The GD jobs that ``bench/compare.py`` and the benches time, in every implementation.

A :class:`Job` is one exp-loss, fixed-step GD problem (data, model, starting parameters, step
size). Its ``fastbias(steps)``, ``cloop(steps)``, ``numpy(steps)``, ``torch(steps)`` and
``jax(steps)`` return a no-argument callable that runs ``steps`` steps from the starting point
and returns the final parameters (flat, in fastbias's layout), so that every implementation
can be checked against fastbias before it is timed. fastbias and the C loop also record the
parameters at ``RECORDS`` log-spaced steps (the way ``train`` records a history) and run the
same divergence tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloops
import numpy as np

import fastbias as fb
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Tensor
from fastbias.optim.history import checkpoint_steps

RECORDS = 10  # checkpoints per decade, as train's default
FLOOR = -1e300


@dataclass
class Job:
    name: str
    model: Any
    Z: np.ndarray  # rows y_n x_n
    params: list[np.ndarray]
    lr: float
    steps: dict[str, int] = field(default_factory=dict)  # steps to time per backend

    @property
    def theta0(self) -> np.ndarray:
        return np.ascontiguousarray(self.model.flatten(self.params), dtype=np.float64)

    def _sched(self, steps: int) -> np.ndarray:
        return checkpoint_steps(steps, RECORDS)

    # ---- fastbias: the model's compiled runner, as train calls it --------------------------
    def fastbias(self, steps: int) -> Callable[[], np.ndarray]:
        Z = self.Z
        run = self.model.runner(Z, np.zeros(len(Z)), 0, "float64")
        sched = self._sched(steps)
        rec = np.zeros((len(sched), self.theta0.size))
        theta0 = self.theta0

        def go():
            theta = theta0.copy()
            scale = np.zeros(1, dtype=np.int64)
            if getattr(run, "scaled", False):
                run(theta, self.lr, 0, 0, steps, sched, rec, FLOOR, scale,
                    np.zeros(len(sched), dtype=np.int64))  # fmt: skip
            else:
                run(theta, self.lr, 0, 0, steps, sched, rec, FLOOR)
            return np.ldexp(theta, int(scale[0]))

        return go

    # ---- the plain C loop -------------------------------------------------------------------
    def cloop(self, steps: int) -> Callable[[], np.ndarray]:
        m, Z, lr = self.model, self.Z, self.lr
        sched = self._sched(steps)
        theta0 = self.theta0
        rec = np.zeros((len(sched), theta0.size))
        if isinstance(m, Linear):
            fn = lambda th: cloops.linear(Z, th, lr, steps, sched, rec)  # noqa: E731
        elif isinstance(m, Diagonal):
            fn = lambda th: cloops.diagonal(Z, th, m.depth, lr, steps, sched, rec)  # noqa: E731
        elif isinstance(m, FullyConnected):
            assert len(m.widths) == 1
            fn = lambda th: cloops.fc2(Z, th, m.widths[0], lr, steps, sched, rec)  # noqa: E731
        elif isinstance(m, Convolutional):
            ZF = cloops.fourier_rows(Z)
            fn = lambda th: cloops.conv(ZF, th, m.depth, lr, steps, sched, rec)  # noqa: E731
        elif isinstance(m, Tensor):
            pos = m.multi_idx + m.offsets[None, :]
            fn = lambda th: cloops.tensor(  # noqa: E731
                Z, th, m.j_idx, pos, m.values, lr, steps, sched, rec
            )
        else:
            raise NotImplementedError(type(m))

        def go():
            theta = theta0.copy()
            done = fn(theta)
            assert done == steps, f"the C loop stopped at step {done}"
            return theta

        return go

    # ---- NumPy, PyTorch, JAX ----------------------------------------------------------------
    def numpy(self, steps: int) -> Callable[[], np.ndarray]:
        import baselines

        return lambda: baselines.numpy_run(self, steps)

    def torch(self, steps: int) -> Callable[[], np.ndarray]:
        import baselines

        return baselines.torch_run(self, steps)

    def jax(self, steps: int) -> Callable[[], np.ndarray]:
        import baselines

        return baselines.jax_run(self, steps)


def _Z(X, y):
    return np.ascontiguousarray(X * y[:, None])


def linear_soudry() -> Job:
    Z = _Z(*fb.datasets.soudry2018())
    lr = 1.0 / np.linalg.norm(Z, 2) ** 2
    return Job("linear, Figure 3.1 data (N=16, d=2)", Linear(), Z, [np.zeros(2)], lr,
               {"fast": 10**6, "numpy": 5000, "torch": 1000, "jax": 10**5})  # fmt: skip


def linear_gauss() -> Job:
    Z = _Z(*fb.datasets.separable_gaussian(1000, 100, margin=0.1, seed=0))
    lr = 1.0 / np.linalg.norm(Z, 2) ** 2
    return Job("linear, N=1000, d=100", Linear(), Z, [np.zeros(100)], lr,
               {"fast": 2000, "numpy": 300, "torch": 200, "jax": 2000})  # fmt: skip


def fc50() -> Job:
    Z = _Z(*fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=0))
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((50, 50)) / 50, rng.standard_normal(50) / 7]
    return Job("FullyConnected([50]), N=200, d=50", FullyConnected([50]), Z, params, 1e-4,
               {"fast": 20000, "numpy": 1000, "torch": 300, "jax": 5000})  # fmt: skip


def diag2() -> Job:
    Z = _Z(*fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=2))
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(50) / 7, rng.standard_normal(50) / 7]
    return Job("Diagonal(2), N=200, d=50", Diagonal(2), Z, params, 1e-3,
               {"fast": 20000, "numpy": 2000, "torch": 300, "jax": 5000})  # fmt: skip


def conv3() -> Job:
    Z = _Z(*fb.datasets.separable_gaussian(64, 64, margin=0.1, seed=1))
    params = [np.random.default_rng(layer).standard_normal(64) / 8 for layer in range(3)]
    return Job("Convolutional(3) full width, N=64, d=64", Convolutional(3), Z, params, 1e-3,
               {"fast": 50000, "numpy": 1000, "torch": 300, "jax": 10000})  # fmt: skip


def tensor3() -> Job:
    """A random sparse order-3 tensor network: d = 50, k = (10, 10, 10), 20 nonzeros per j."""
    rng = np.random.default_rng(3)
    d, ks, per = 50, (10, 10, 10), 20
    jidx = np.repeat(np.arange(d), per)
    multi = np.stack([rng.integers(0, k, jidx.size) for k in ks], axis=1)
    vals = rng.standard_normal(jidx.size)
    model = Tensor((jidx, multi, vals), (d, *ks))
    Z = _Z(*fb.datasets.separable_gaussian(200, d, margin=0.1, seed=3))
    params = [rng.standard_normal(k) / 4 for k in ks]
    return Job("Tensor, order 3, k=10, nnz=1000, N=200, d=50", model, Z, params, 1e-6,
               {"fast": 20000, "numpy": 1000, "torch": 300, "jax": 5000})  # fmt: skip


def all_jobs() -> list[Job]:
    return [linear_soudry(), linear_gauss(), fc50(), diag2(), conv3(), tensor3()]
