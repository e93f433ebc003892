"""The linear predictor ``f(x) = w.x`` (Soudry et al. 2018, eq. 2.1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import Model, Runner, generic_runner, kernel_data


class Linear(Model):
    """``beta = w``: one layer, homogeneous of degree 1."""

    name = "linear"
    depth = 1
    default_init = "zeros"

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        return [(d,)]

    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``beta = w`` for ``params = [w]``."""
        (w,) = params
        return np.asarray(w)

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(G, dtype=np.float64).copy()]

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        return np.asarray(thetas).reshape(-1, d)

    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        if loss == 2:  # squared loss: the one-layer fully connected kernel
            from ..kernels._numba_models import gd_fully_connected

            d = Z.shape[1]
            extra = (np.array([d], dtype=np.int64), np.zeros(1, dtype=np.int64))
            return generic_runner(
                gd_fully_connected, Z, targets, loss, extra, compensated=precision == "compensated"
            )
        if precision == "compensated":
            return _compensated_runner(Z, loss)
        from ..kernels import C_THREADS, linear_kernel

        kernel, dtype = linear_kernel(precision)
        Zk = np.ascontiguousarray(Z, dtype=dtype)
        threads = C_THREADS.get()
        kw = {"n_threads": threads} if threads and kernel.__name__ == "gd_linear_float64" else {}

        def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
            return kernel(
                Zk, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, **kw
            )

        return run

    def gradient_data(self, Z: np.ndarray) -> tuple:
        from ..kernels._numba_flow import KIND_LINEAR

        return kernel_data(KIND_LINEAR, Z)


def _compensated_runner(Z: np.ndarray, loss: int) -> Runner:
    """``precision="compensated"``: float64 iterates whose updates are summed with a carried
    compensation term (kept by the runner, checkpointed through ``get_state``): the C float64
    kernel with its ``lo`` argument, or the numba kernel without the extension."""
    from ..kernels import _c

    Zk = np.ascontiguousarray(Z, dtype=np.float64)
    lo = np.zeros(Zk.shape[1])
    if _c.available() and hasattr(_c, "gd_linear_float64"):

        def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
            return _c.gd_linear_float64(
                Zk, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, 1, lo
            )

    else:
        from ..kernels._numba import gd_linear_compensated

        def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
            return gd_linear_compensated(
                Zk, theta, lo, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor
            )

    def set_state(saved: dict) -> None:
        lo[...] = saved["lo"]

    run.get_state = lambda: {"lo": lo.copy()}
    run.set_state = set_state
    return run
