"""Linear diagonal networks ``beta = w_1 * w_2 * ... * w_L`` (Yun et al. 2021, eq. 11)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._base import ConvergenceCondition, Model, Runner, generic_runner, kernel_data
from ._layouts import diagonal_layout, extended_factored_runner, extended_tensor_runner


class Diagonal(Model):
    """Depth-L diagonal network: L vectors in R^d multiplied elementwise.

    GD on it is biased towards the L_{2/L} max-margin direction (Gunasekar et al. 2018,
    Section 5; Yun et al. Corollary 2): L1 for depth 2.
    """

    name = "diagonal"

    def __init__(self, depth: int = 2):
        if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}.")
        self.depth = int(depth)

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        return [(d,)] * self.depth

    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        return np.prod(np.asarray(params, dtype=np.float64), axis=0)

    def _predictor_of_theta(self, theta: np.ndarray, d: int) -> np.ndarray | None:
        """:meth:`predictor` of the flat ``theta``: its (L, d) view, as np.asarray(params)."""
        theta = np.asarray(theta)
        if theta.dtype != np.float64 or theta.shape != (self.depth * d,):
            return None
        return np.multiply.reduce(theta.reshape(self.depth, d), axis=0)  # (np.prod's reduction)

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        thetas = np.asarray(thetas)
        # (np.prod's reduction, without its Python wrapper: a history's every call)
        return np.multiply.reduce(thetas.reshape(thetas.shape[0], self.depth, d), axis=1)

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        W = np.asarray(params, dtype=np.float64)
        return [G * np.prod(np.delete(W, layer, axis=0), axis=0) for layer in range(self.depth)]

    def convergence_condition(
        self, params: Sequence[np.ndarray], task: str = "classification"
    ) -> ConvergenceCondition:
        """Yun et al. Corollary 2: ``lambda = min_{l<L, j} w_l[j]^2 - w_L[j]^2 > 0``.

        The same quantity is the lambda of Theorem 5 / Corollary 5 for regression."""
        W = np.asarray(params, dtype=np.float64)
        if self.depth == 1:
            return ConvergenceCondition(np.inf, True, "linear model: no condition needed")
        lam = float(np.min(W[:-1] ** 2 - W[-1] ** 2))
        return ConvergenceCondition(lam, lam > 0, "Yun et al. 2021, Corollary 2")

    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        if precision == "extended":  # long double, factored (else the tensor kernel)
            run = extended_factored_runner("diagonal", Z, loss, (self.depth,))
            if run is not None:
                return run
            return extended_tensor_runner(diagonal_layout(Z.shape[1], self.depth), Z, loss)
        from ..kernels._deep import gd_diagonal

        return generic_runner(
            gd_diagonal, Z, targets, loss, (self.depth,), compensated=precision == "compensated"
        )

    def gradient_data(self, Z: np.ndarray) -> tuple:
        from ..kernels._numba_flow import KIND_DIAGONAL

        return kernel_data(KIND_DIAGONAL, Z, ints=[self.depth])

    def config(self) -> dict:
        return {"depth": self.depth}

    def __repr__(self) -> str:
        return f"Diagonal(depth={self.depth})"
