"""A factorized linear model: matrix sensing ``f(x) = <X, U V^T>`` with a rank-r factorization.

Each input ``x in R^d`` is read as the matrix ``X = x.reshape(d1, d2)`` (row-major) and the
predictor is ``W = U V^T`` with ``U in R^{d1 x r}``, ``V in R^{d2 x r}``: a two-layer linear
network, homogeneous of degree 2 (``beta = vec(U V^T)``). It is the tensor network of Yun et
al. (2021) eq. 6 with ``[M(x)]_{(a, k), (b, k)} = X[a, b]``. Gradient descent on
``||U||_F^2 + ||V||_F^2``-balanced factorizations is biased towards small nuclear norm
(Gunasekar et al. 2017; for the exponential loss, towards the KKT points of
``min ||U||_F^2 + ||V||_F^2 s.t. margins >= 1``, Lyu and Li 2020, whose global minimum is the
nuclear-norm max margin ``min 2 ||W||_*`` when ``r >= rank W``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import Model, Runner, generic_runner
from ._layouts import extended_tensor_runner, low_rank_layout, tensor_gradient_data


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    return int(value)


class LowRank(Model):
    """``beta = vec(U V^T)``: rank-``r`` matrix sensing on inputs read as ``(d1, d2)`` matrices.

    Parameters
    ----------
    rank : int
        ``r``, the inner dimension of the factorization (any ``r >= 1``; ``r >= min(d1, d2)``
        makes every matrix reachable).
    shape : (int, int), optional
        ``(d1, d2)`` with ``d1 * d2 = d``; default square (``d`` must be a perfect square).

    Notes
    -----
    The layers are ``U`` (d1, r) and ``V`` (d2, r); ``theta = [U.ravel(), V.ravel()]``.
    ``LowRank(r, (d, 1))`` is ``FullyConnected([r])`` (``V`` is ``w_2^T``).
    """

    name = "low_rank"
    depth = 2

    def __init__(self, rank: int, shape: Sequence[int] | None = None):
        self.rank = _positive_int(rank, "rank")
        if shape is None:
            self.shape: tuple[int, int] | None = None
        else:
            if isinstance(shape, (str, bytes)) or len(shape) != 2:
                raise ValueError(f"shape must be a pair (d1, d2); got {shape!r}.")
            self.shape = (_positive_int(shape[0], "shape[0]"), _positive_int(shape[1], "shape[1]"))

    # ---- structure -------------------------------------------------------------------------
    def matrix_shape(self, d: int) -> tuple[int, int]:
        """``(d1, d2)`` for inputs of dimension ``d`` (raises ValueError if they do not fit)."""
        d = int(d)
        if self.shape is not None:
            d1, d2 = self.shape
            if d1 * d2 != d:
                raise ValueError(
                    f"LowRank(shape=({d1}, {d2})) reads inputs of dimension d1 * d2 = "
                    f"{d1 * d2}; X has d = {d}."
                )
            return d1, d2
        n = math.isqrt(d)
        if n * n != d:
            raise ValueError(
                f"LowRank without shape reads each input as a square matrix, so d must be a "
                f"perfect square; X has d = {d}. Pass shape=(d1, d2) with d1 * d2 = {d}."
            )
        return n, n

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        d1, d2 = self.matrix_shape(d)
        return [(d1, self.rank), (d2, self.rank)]

    # ---- the map P and its derivative (NumPy references) ----------------------------------
    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``beta = vec(U V^T)`` (row-major)."""
        U, V = (np.asarray(p, dtype=np.float64) for p in params)
        return (U @ V.T).ravel()

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        thetas = np.asarray(thetas)
        (d1, r), (d2, _) = self.shapes(d)
        U = thetas[:, : d1 * r].reshape(-1, d1, r)
        V = thetas[:, d1 * r :].reshape(-1, d2, r)
        return np.matmul(U, V.transpose(0, 2, 1)).reshape(-1, d)

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        """``d<G, vec(U V^T)>/dU = mat(G) V`` and ``d/dV = mat(G)^T U``."""
        U, V = (np.asarray(p, dtype=np.float64) for p in params)
        Gm = np.asarray(G, dtype=np.float64).reshape(U.shape[0], V.shape[0])
        return [Gm @ V, Gm.T @ U]

    # ---- compiled runs ---------------------------------------------------------------------
    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        """``kernels._numba_lowrank.gd_low_rank`` bound to the data (float64, compensated);
        ``precision="extended"``: the long double tensor kernel on the same layout."""
        d1, d2 = self.matrix_shape(np.shape(Z)[1])
        if precision == "extended":
            return extended_tensor_runner(low_rank_layout(d1, d2, self.rank), Z, loss)
        from ..kernels._numba_lowrank import gd_low_rank

        return generic_runner(
            gd_low_rank,
            Z,
            targets,
            loss,
            (d1, d2, self.rank),
            compensated=precision == "compensated",
        )

    def gradient_data(self, Z: np.ndarray) -> tuple:
        """The tensor network's generic gradient (flow, optimizers, backtracking)."""
        d1, d2 = self.matrix_shape(Z.shape[1])
        return tensor_gradient_data(low_rank_layout(d1, d2, self.rank), Z)

    # ---- checkpoints ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"rank": self.rank, "shape": None if self.shape is None else list(self.shape)}

    def __repr__(self) -> str:
        if self.shape is None:
            return f"LowRank(rank={self.rank})"
        return f"LowRank(rank={self.rank}, shape={self.shape})"
