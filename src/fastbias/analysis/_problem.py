"""Problem 2 of Vardi et al. (2022) for a model and a data set, with derivatives.

``min_theta 1/2 ||theta||^2  s.t.  gamma_i(theta) = y_i Phi(theta; x_i) >= 1`` (Vardi eq. 2,
Gunasekar et al. 2018 eq. 14). :class:`Problem` gives the margins, the per-sample gradients
``grad gamma_i`` and their Hessians for every model of :mod:`fastbias.models`:

* linear predictors ``Phi(theta; x) = x . P(theta)``: ``grad Phi(theta; x_i) = vjp(theta, x_i)``;
* :class:`~fastbias.models.Network` (linear or ReLU): the network's own forward pass and
  Jacobian. A ReLU network is piecewise multilinear: with the activation pattern fixed
  (``masks``, one (N, d_l) 0/1 array per hidden layer) it is the multilinear map
  ``W^(m) D_{m-1} W^(m-1) ... D_1 W^(1) x``, one smooth piece of Problem 2.

Every ``Phi`` here is multilinear in the layers (each layer's parameters enter linearly), so the
central differences of the gradient used for Hessians are exact up to rounding for any step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_scale, check_X_y
from ..models import Model
from ..models.network import Network

__all__ = ["Problem", "Kink"]


@dataclass(frozen=True)
class Kink:
    """A hidden neuron whose input is zero on a sample: ReLU's kink (Clarke subgradients).

    ``layer`` is the 1-based hidden layer, ``neuron`` and ``sample`` 0-based; ``slope`` is the
    ``sigma'(0)`` in [0, 1] chosen by :func:`fastbias.analysis.kkt` (NaN when not chosen).
    """

    sample: int
    layer: int
    neuron: int
    slope: float = float("nan")


class Problem:
    """Problem 2 (Vardi eq. 2) for ``model`` on ``(X, y)``; ``theta`` is always flat."""

    def __init__(self, model: Any, X: Any, y: Any = None):
        if not isinstance(model, Model):
            raise ValueError(
                f"model must be a fastbias.models.Model (Linear(), FullyConnected(...), "
                f"Network(...), ...); got {model!r}."
            )
        X, y = check_X_y(X, y)
        check_scale(X, 1e150, "the optimality analysis forms products of inputs")
        self.model = model
        self.X = X
        self.y = y
        self.N, self.d = X.shape
        self.network = isinstance(model, Network)
        model.shapes(self.d)  # validates the architecture against d
        self.L = int(model.depth)
        self.P = int(model.n_params(self.d))
        sizes = [int(np.prod(s)) for s in model.shapes(self.d)]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.relu = self.network and model.relu

    # ---- parameters ------------------------------------------------------------------------
    def flat(self, theta: Any) -> np.ndarray:
        """A flat float64 copy of ``theta`` (flat vector or list of layers), validated."""
        try:
            arr = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None  # layers of different lengths
        if arr is not None and arr.ndim == 1:
            flat = arr.copy()
        else:
            layers = list(theta)
            shapes = self.model.shapes(self.d)
            if len(layers) != len(shapes):
                raise ValueError(
                    f"theta has {len(layers)} layers but {self.model!r} has {len(shapes)}."
                )
            for pos, (p, s) in enumerate(zip(layers, shapes, strict=True), start=1):
                if np.size(p) != int(np.prod(s)):
                    raise ValueError(
                        f"layer {pos} of theta has {np.size(p)} entries; expected shape {s}."
                    )
            flat = self.model.flatten(layers)
        if flat.shape != (self.P,):
            raise ValueError(f"theta has {flat.size} entries; {self.model!r} has {self.P}.")
        if not np.all(np.isfinite(flat)):
            raise ValueError("theta contains NaN or inf; parameters must be finite.")
        return flat

    def params(self, theta: np.ndarray) -> list[np.ndarray]:
        return [np.array(p) for p in self.model.unflatten(np.asarray(theta), self.d)]

    def layer_slice(self, layer: int) -> slice:
        """Flat positions of layer ``layer`` (1-based)."""
        return slice(int(self.offsets[layer - 1]), int(self.offsets[layer]))

    # ---- margins and derivatives -----------------------------------------------------------
    def outputs(self, theta: np.ndarray, masks=None) -> np.ndarray:
        if self.network:
            _, _, A, _ = self.model._forward(theta, self.X, masks)
            return A[-1][:, 0]
        return self.X @ self.model.predictor(self.params(theta))

    def margins(self, theta: np.ndarray, masks=None) -> np.ndarray:
        """``gamma_i = y_i Phi(theta; x_i)`` (on the piece ``masks`` if given)."""
        return self.y * self.outputs(theta, masks)

    def jac(self, theta: np.ndarray, masks=None, rows=None) -> np.ndarray:
        """``grad gamma_i`` as rows, shape (N, P) (or ``len(rows)``)."""
        idx = np.arange(self.N) if rows is None else np.asarray(rows, dtype=int)
        if self.network:
            Ws, H, _, D = self.model._forward(theta, self.X, masks)
            J = self.model._backward(Ws, H, D, self.L - 1, np.ones((self.N, 1)))
            return self.y[idx, None] * J[idx]
        params = self.params(theta)
        out = np.empty((idx.size, self.P))
        for r, i in enumerate(idx):
            out[r] = self.model.flatten(self.model.vjp(params, self.y[i] * self.X[i]))
        return out

    def _fd_step(self, theta: np.ndarray) -> float:
        scale = float(np.linalg.norm(theta)) / np.sqrt(self.P)
        return 0.25 * scale if scale > 0 else 1.0

    def hessians(self, theta: np.ndarray, rows, masks=None) -> np.ndarray:
        """``grad^2 gamma_i`` for ``i in rows``, shape (len(rows), P, P), by central differences
        of :meth:`jac` (exact up to rounding: the pieces are multilinear)."""
        rows = np.asarray(rows, dtype=int)
        H = np.zeros((rows.size, self.P, self.P))
        if rows.size == 0 or self.L < 2:
            return H
        h = self._fd_step(theta)
        for b in range(self.P):
            e = np.zeros(self.P)
            e[b] = h
            H[:, :, b] = (self.jac(theta + e, masks, rows) - self.jac(theta - e, masks, rows)) / (
                2 * h
            )
        return 0.5 * (H + H.transpose(0, 2, 1))

    # ---- ReLU structure --------------------------------------------------------------------
    def preacts(self, theta: np.ndarray, masks=None) -> list[np.ndarray]:
        """Hidden pre-activations, one (N, d_l) array per hidden layer (Network only)."""
        if not self.network:
            return []
        _, _, A, _ = self.model._forward(theta, self.X, masks)
        return A[:-1]

    def preact_scales(self, theta: np.ndarray) -> list[np.ndarray]:
        """``||x_i|| prod_{k<=l} ||W^(k)||_F``: the size of layer l's inputs, per sample."""
        if not self.network:
            return []
        Ws = self.model.weight_matrices(theta)
        xn = np.linalg.norm(self.X, axis=1)
        out, prod = [], 1.0
        for W in Ws[:-1]:
            prod *= float(np.linalg.norm(W))
            out.append(xn * prod)
        return out

    def kinks(self, theta: np.ndarray, tol: float) -> list[Kink]:
        """Hidden neurons whose input is within ``tol`` (relative) of 0, per sample."""
        if not self.relu:
            return []
        out = []
        for layer, (a, s) in enumerate(
            zip(self.preacts(theta), self.preact_scales(theta), strict=True), start=1
        ):
            hit = np.abs(a) <= tol * np.maximum(s, np.finfo(float).tiny)[:, None]
            for i, j in zip(*np.nonzero(hit), strict=True):
                out.append(Kink(int(i), layer, int(j)))
        return out

    def sign_masks(self, theta: np.ndarray, kinks=(), values=None) -> list[np.ndarray] | None:
        """The activation pattern at ``theta`` (1 where the input is > 0) with the kinks set to
        ``values`` (0/1, default 0); None for models without activations."""
        if not self.relu:
            return None
        masks = [(a > 0).astype(np.float64) for a in self.preacts(theta)]
        for pos, k in enumerate(kinks):
            masks[k.layer - 1][k.sample, k.neuron] = 0.0 if values is None else values[pos]
        return masks

    def preact_jac(self, theta: np.ndarray, kinks, masks) -> np.ndarray:
        """Gradients of the kink neurons' inputs ``a_{l,j}(x_i)`` on the piece ``masks``."""
        G = np.zeros((len(kinks), self.P))
        if not kinks:
            return G
        Ws, H, _, D = self.model._forward(theta, self.X, masks)
        for pos, k in enumerate(kinks):
            delta = np.zeros((self.N, Ws[k.layer - 1].shape[0]))
            delta[k.sample, k.neuron] = 1.0
            G[pos] = self.model._backward(Ws, H, D, k.layer - 1, delta)[k.sample]
        return G

    def preact_hessians(self, theta: np.ndarray, kinks, masks) -> np.ndarray:
        K = np.zeros((len(kinks), self.P, self.P))
        if not kinks:
            return K
        h = self._fd_step(theta)
        for b in range(self.P):
            e = np.zeros(self.P)
            e[b] = h
            K[:, :, b] = (
                self.preact_jac(theta + e, kinks, masks) - self.preact_jac(theta - e, kinks, masks)
            ) / (2 * h)
        return 0.5 * (K + K.transpose(0, 2, 1))

    def consistent(self, theta: np.ndarray, masks, tol: float) -> bool:
        """Whether ``theta`` lies in the (closed) piece ``masks``, up to ``tol`` (relative)."""
        if masks is None:
            return True
        for a, s, mk in zip(self.preacts(theta), self.preact_scales(theta), masks, strict=True):
            slack = tol * s[:, None]
            if np.any((mk > 0.5) & (a < -slack)) or np.any((mk < 0.5) & (a > slack)):
                return False
        return True
