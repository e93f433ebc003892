"""Linear fully connected networks ``beta = W_1 ... W_{L-1} w_L`` (Gunasekar eq. 1, Yun eq. 10)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ._base import ConvergenceCondition, Model, Runner, generic_runner, kernel_data, layer_offsets
from ._layouts import (
    extended_factored_runner,
    extended_tensor_runner,
    fully_connected_layout,
)


@functools.lru_cache(maxsize=64)
def _dims_offsets(d: int, widths: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' ``dims`` ``[d, w_1, ..., w_{L-1}]`` and layer ``offsets`` (int64,
    read-only; the runner passes copies: numba kernels are compiled for writable arrays)."""
    dims = np.array([d, *widths], dtype=np.int64)
    sizes = [int(a * b) for a, b in zip(dims[:-1], dims[1:], strict=True)] + [int(dims[-1])]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    dims.setflags(write=False)
    offsets.setflags(write=False)
    return dims, offsets


class FullyConnected(Model):
    """Depth ``L = len(widths) + 1``: ``W_1 (d x widths[0])``, ..., ``w_L (widths[-1],)``.

    GD converges in direction to the L2 max-margin predictor for every depth (Gunasekar et al.
    Theorem 1). ``FullyConnected([])`` is the linear model.
    """

    name = "fully_connected"

    def __init__(self, widths: Sequence[int] = ()):
        widths = list(widths)
        for w in widths:
            if not isinstance(w, (int, np.integer)) or isinstance(w, bool) or w < 1:
                raise ValueError(f"widths must be integers >= 1; got {widths!r}.")
        self.widths = [int(w) for w in widths]
        self.depth = len(self.widths) + 1

    def dims(self, d: int) -> np.ndarray:
        return np.array([d, *self.widths], dtype=np.int64)

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        if type(d) is int:  # (the usual call: the same tuples without an array)
            dims = [d, *self.widths]
            return [(dims[i], dims[i + 1]) for i in range(len(dims) - 1)] + [(dims[-1],)]
        dims = self.dims(d)
        return [(int(a), int(b)) for a, b in zip(dims[:-1], dims[1:], strict=True)] + [
            (int(dims[-1]),)
        ]

    def _natural_layer(self, layer: int, arr: np.ndarray, d: int) -> np.ndarray | None:
        """A weight matrix given as ``(out, in)`` (Vardi's ``W^(l)``, PyTorch's layout): the
        transpose of this model's ``(in, out)`` layer. Square layers must use ``(in, out)``."""
        shape = self.shapes(d)[layer]
        if len(shape) == 2 and shape[0] != shape[1] and arr.shape == shape[::-1]:
            return np.ascontiguousarray(arr.T)
        return None

    def _natural_layouts(self, layer: int, d: int) -> list[str]:
        shape = self.shapes(d)[layer]
        if len(shape) == 2 and shape[0] != shape[1]:
            return [f"the (out, in) weight matrix {shape[::-1]}"]
        return []

    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        beta = np.asarray(params[-1], dtype=np.float64)
        for W in reversed(params[:-1]):
            beta = np.asarray(W) @ beta
        return beta

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        thetas = np.asarray(thetas)
        K = thetas.shape[0]
        dims = self.dims(d)
        offsets = layer_offsets(self.shapes(d))
        beta = thetas[:, offsets[-1] :]  # w_L rows
        for layer in range(len(dims) - 2, -1, -1):
            a, b = int(dims[layer]), int(dims[layer + 1])
            W = thetas[:, offsets[layer] : offsets[layer] + a * b].reshape(K, a, b)
            beta = np.matmul(W, beta[:, :, None])[:, :, 0]
        return np.ascontiguousarray(beta)

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        right, b = [], np.asarray(params[-1], dtype=np.float64)
        for W in reversed(params[:-1]):
            right.insert(0, b)
            b = np.asarray(W) @ b
        out, a = [], np.asarray(G, dtype=np.float64)
        for W, b in zip(params[:-1], right, strict=True):
            out.append(np.outer(a, b))
            a = np.asarray(W).T @ a
        out.append(a)
        return out

    def convergence_condition(
        self, params: Sequence[np.ndarray], task: str = "classification"
    ) -> ConvergenceCondition | None:
        """Regression: Yun et al. Theorem 7.1, ``W_l^T W_l >= W_{l+1} W_{l+1}^T`` (l <= L-2)
        and ``W_{L-1}^T W_{L-1} - w_L w_L^T >= lambda I``; ``margin`` is that smallest
        eigenvalue (``-inf`` when a chain condition fails). Classification: none is needed
        beyond the loss going to zero (Gunasekar et al. Theorem 1), so None."""
        if task != "regression":
            return None
        if self.depth == 1:
            return ConvergenceCondition(np.inf, True, "linear model: no condition needed")
        for W, V in zip(params[:-2], params[1:-1], strict=True):
            gap = (
                np.linalg.eigvalsh(W.T @ W - V @ V.T).min() if W.shape[1] == V.shape[0] else -np.inf
            )
            if gap < -1e-12:
                return ConvergenceCondition(
                    -np.inf,
                    False,
                    "Yun et al. 2021, Theorem 7.1",
                    "W_l^T W_l - W_{l+1} W_{l+1}^T is not PSD",
                )
        W, w = params[-2], params[-1]
        lam = float(np.linalg.eigvalsh(W.T @ W - np.outer(w, w)).min())
        return ConvergenceCondition(lam, lam > 0, "Yun et al. 2021, Theorem 7.1")

    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        dims, offsets = (a.copy() for a in _dims_offsets(int(Z.shape[1]), tuple(self.widths)))
        if precision == "extended":  # long double, factored (else the tensor kernel)
            run = extended_factored_runner("fc", Z, loss, (dims, offsets))
            if run is not None:
                return run
            layout = fully_connected_layout(Z.shape[1], self.widths)
            return extended_tensor_runner(layout, Z, loss)
        from ..kernels._deep import gd_fully_connected

        return generic_runner(
            gd_fully_connected,
            Z,
            targets,
            loss,
            (dims, offsets),
            compensated=precision == "compensated",
        )

    def gradient_data(self, Z: np.ndarray) -> tuple:
        from ..kernels._numba_flow import KIND_FULLY_CONNECTED

        d = Z.shape[1]
        return kernel_data(
            KIND_FULLY_CONNECTED, Z, ints=self.dims(d), offsets=layer_offsets(self.shapes(d))
        )

    def config(self) -> dict:
        return {"widths": list(self.widths)}

    def __repr__(self) -> str:
        return f"FullyConnected(widths={self.widths})"
