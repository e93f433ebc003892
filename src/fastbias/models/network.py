"""Networks of the class N of Vardi, Shamir and Srebro (2022), Section 2: linear or ReLU.

A depth-m network is parameterized by one vector ``u^(l) in R^{p_l}`` per layer and a pattern
``g_l`` per layer that says which parameter sits at each position of the weight matrix
``W^(l) in R^{d_l x d_{l-1}}``:

    W^(l)[i, j] = u^(l)[g_l(i, j)]   if g_l(i, j) >= 0,   and 0 if g_l(i, j) = -1.

(The paper numbers parameters from 1 and uses 0 for a structural zero; here they are numbered
from 0 and -1 marks a structural zero.) A parameter used at several positions of one layer is a
shared weight (convolutions); a parameter can never be shared across layers. With
``h'_0 = x``, ``h_l = W^(l) h'_{l-1}`` and ``h'_l = sigma(h_l)`` for the hidden layers, the
output is the scalar ``Phi(theta; x) = W^(m) h'_{m-1}`` (``d_m = 1``, no bias, no activation on
the output), positively homogeneous of degree ``m`` in ``theta``.

``theta`` is flattened as ``[u^(1), ..., u^(m)]``; :meth:`Network.shapes` gives ``[(p_1,),
..., (p_m,)]``. With ``activation="linear"`` the network is the linear predictor
``beta = (W^(m) ... W^(1))^T`` and behaves like the other models of :mod:`fastbias.models`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_choice
from ._base import Model, Runner, generic_runner, kernel_data

__all__ = ["Network"]

ACTIVATIONS = ("relu", "linear")


def _as_pattern(pattern: Any, layer: int) -> np.ndarray:
    try:
        g = np.asarray(pattern)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the pattern of layer {layer} is not an array: {err}") from None
    if g.ndim == 1:
        g = g[None, :]
    if g.ndim != 2 or g.size == 0:
        raise ValueError(
            f"the pattern of layer {layer} must be a non-empty 2-D integer array of shape "
            f"(d_{layer}, d_{layer - 1}); got shape {g.shape}."
        )
    if g.dtype.kind == "f":
        if not np.all(np.isfinite(g)) or not np.all(g == np.round(g)):
            raise ValueError(f"the pattern of layer {layer} must hold integers; got {g.dtype}.")
    elif g.dtype.kind not in "iu":
        raise ValueError(f"the pattern of layer {layer} must hold integers; got dtype {g.dtype}.")
    g = g.astype(np.int64)
    if np.any(g < -1):
        bad = int(g[g < -1][0])
        raise ValueError(
            f"the pattern of layer {layer} holds {bad}; entries must be parameter indices >= 0 "
            "or -1 for a structural zero."
        )
    return g


class Network(Model):
    """A network of the class N (Vardi et al. 2022, Section 2), linear or ReLU.

    Parameters
    ----------
    layers : sequence
        One entry per layer, input layer first: ``(n_params, pattern)`` or just ``pattern``
        (then ``n_params = pattern.max() + 1``). ``pattern`` is an integer array of shape
        ``(d_l, d_{l-1})``: the index (in ``[0, n_params)``) of the layer's parameter at each
        weight position, or -1 for a structural zero. The last layer has one row.
    activation : {"relu", "linear"}
        ``sigma`` of the hidden neurons.
    relu_grad_at_zero : float in [0, 1]
        The value used for ``sigma'(0)`` by :meth:`gradient` and the compiled runs.
    indexing : {"layer", "global"}
        ``"layer"``: each pattern numbers its own layer's parameters from 0. ``"global"``: the
        patterns use one numbering of the flat ``theta``; each index must belong to one layer
        (weights shared across layers are outside N) and layer l's indices must follow those of
        layer l-1. ``n_params`` must not be given in this form.
    label : str, optional
        Shown by ``repr``.

    Notes
    -----
    ``depth`` is m, the homogeneity order of ``Phi``. ``linear_predictor`` is True only for
    ``activation="linear"``, where :meth:`predictor` and :meth:`vjp` exist; a ReLU network is
    trained through :meth:`runner_xy`, which needs ``X`` and ``y`` separately.
    """

    name = "network"
    default_init = "gaussian"

    def __init__(
        self,
        layers: Sequence[Any],
        activation: str = "relu",
        relu_grad_at_zero: float = 0.0,
        *,
        indexing: str = "layer",
        label: str | None = None,
    ):
        check_choice(activation, "activation", ACTIVATIONS)
        check_choice(indexing, "indexing", ["layer", "global"])
        try:
            c0 = float(relu_grad_at_zero)
        except (TypeError, ValueError):
            raise ValueError(
                f"relu_grad_at_zero must be a number in [0, 1]; got {relu_grad_at_zero!r}."
            ) from None
        if not 0.0 <= c0 <= 1.0:
            raise ValueError(f"relu_grad_at_zero must be in [0, 1]; got {relu_grad_at_zero!r}.")
        if isinstance(layers, np.ndarray) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(
                "layers must be a non-empty list with one (n_params, pattern) pair or pattern "
                "per layer."
            )
        counts: list[int | None] = []
        patterns: list[np.ndarray] = []
        for pos, spec in enumerate(layers, start=1):
            if isinstance(spec, tuple) and len(spec) == 2 and np.ndim(spec[0]) == 0:
                n, pat = spec
                if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
                    raise ValueError(f"n_params of layer {pos} must be an integer >= 1; got {n!r}.")
                counts.append(int(n))
            else:
                pat = spec
                counts.append(None)
            patterns.append(_as_pattern(pat, pos))
        if indexing == "global":
            if any(c is not None for c in counts):
                raise ValueError(
                    "with indexing='global' give the patterns only (the parameter counts follow "
                    "from the global numbering)."
                )
            patterns, counts = self._localize(patterns)
        for pos, (g, n) in enumerate(zip(patterns, counts, strict=True), start=1):
            top = int(g.max())
            if n is None:
                if top < 0:
                    raise ValueError(f"the pattern of layer {pos} has no parameters (all -1).")
                n = top + 1
                counts[pos - 1] = n
            if top >= n:
                raise ValueError(
                    f"the pattern of layer {pos} references parameter {top}, but the layer has "
                    f"n_params = {n} (indices 0..{n - 1}); raise n_params or fix the pattern."
                )
            used = np.zeros(n, dtype=bool)
            used[g[g >= 0]] = True
            if not used.all():
                missing = int(np.flatnonzero(~used)[0])
                raise ValueError(
                    f"parameter {missing} of layer {pos} sits at no weight position; every "
                    "parameter of a network in N must appear in its layer's pattern "
                    "(Vardi et al. Section 2)."
                )
        for pos in range(1, len(patterns)):
            if patterns[pos].shape[1] != patterns[pos - 1].shape[0]:
                raise ValueError(
                    f"layer {pos + 1}'s pattern has {patterns[pos].shape[1]} columns but layer "
                    f"{pos} has {patterns[pos - 1].shape[0]} neurons (rows); they must match."
                )
        if patterns[-1].shape[0] != 1:
            raise ValueError(
                f"the output layer must have one row (a scalar output); layer {len(patterns)}'s "
                f"pattern has {patterns[-1].shape[0]} rows."
            )
        self.activation = activation
        self.relu_grad_at_zero = c0
        self.patterns = [g.copy() for g in patterns]
        for g in self.patterns:
            g.setflags(write=False)
        self.n_layer_params = [int(n) for n in counts]
        self.depth = len(patterns)
        self.dims = [int(patterns[0].shape[1])] + [int(g.shape[0]) for g in patterns]
        self.offsets = [0, *np.cumsum(self.n_layer_params).tolist()]
        self._label = label
        self._scatter = None

    @staticmethod
    def _localize(patterns: list[np.ndarray]) -> tuple[list[np.ndarray], list[int | None]]:
        owner: dict[int, int] = {}
        for pos, g in enumerate(patterns, start=1):
            for k in np.unique(g[g >= 0]).tolist():
                if k in owner and owner[k] != pos:
                    raise ValueError(
                        f"parameter {k} is used in layers {owner[k]} and {pos}: weights shared "
                        "across layers are outside the class N (Vardi et al. Section 2 allows "
                        "sharing within a layer only)."
                    )
                owner[k] = pos
        local, counts, start = [], [], 0
        for pos, g in enumerate(patterns, start=1):
            ids = np.unique(g[g >= 0])
            if ids.size == 0:
                raise ValueError(f"the pattern of layer {pos} has no parameters (all -1).")
            if ids[0] != start or ids[-1] != start + ids.size - 1:
                raise ValueError(
                    f"with indexing='global' the parameters of layer {pos} must be numbered "
                    f"{start}..{start + ids.size - 1} (consecutively after layer {pos - 1}'s); "
                    f"got indices {ids[0]}..{ids[-1]} ({ids.size} distinct)."
                )
            local.append(np.where(g >= 0, g - start, -1))
            counts.append(int(ids.size))
            start += int(ids.size)
        return local, counts

    # ---- builders --------------------------------------------------------------------------
    @classmethod
    def fully_connected(
        cls, d: int, widths: Sequence[int] = (), activation: str = "relu", **kw: Any
    ) -> Network:
        """Fully connected, depth ``len(widths) + 1``; ``W^(l)`` stored row by row (neuron by
        neuron), so a depth-2 network has ``theta = [w_1, ..., w_k, v]`` as in Vardi et al.

        The flat vector is the transpose-order of :class:`FullyConnected`'s (whose first layer
        is ``W_1 = W^(1)^T``); :meth:`params_from_weights` converts."""
        dims = [_check_dim(d, "d")] + [_check_dim(w, "widths entry") for w in widths] + [1]
        pats = [np.arange(a * b).reshape(a, b) for b, a in zip(dims[:-1], dims[1:], strict=True)]
        name = f"Network.fully_connected(d={dims[0]}, widths={list(dims[1:-1])}, {activation!r})"
        return cls(pats, activation, label=kw.pop("label", name), **kw)

    @classmethod
    def diagonal(cls, d: int, depth: int = 2, activation: str = "relu", **kw: Any) -> Network:
        """Diagonal network (Vardi Section 2): ``W^(l) = diag(w_l)`` for ``l < m`` and
        ``W^(m) = w_m^T``; ``theta = [w_1, ..., w_m]``, the layout of :class:`Diagonal`."""
        d = _check_dim(d, "d")
        depth = _check_dim(depth, "depth")
        diag = np.full((d, d), -1, dtype=np.int64)
        diag[np.arange(d), np.arange(d)] = np.arange(d)
        pats = [diag] * (depth - 1) + [np.arange(d)[None, :]]
        name = f"Network.diagonal(d={d}, depth={depth}, {activation!r})"
        return cls(pats, activation, label=kw.pop("label", name), **kw)

    @classmethod
    def conv_disjoint_patches(
        cls, d: int, patch_size: int, activation: str = "relu", **kw: Any
    ) -> Network:
        """Depth-2 convolution with one filter ``w in R^k`` over disjoint patches (Vardi
        Theorem 4.4): ``Phi(x) = sum_j v_j sigma(w . x^(j))``, ``x^(j) = x[jk:(j+1)k]``;
        ``theta = [w, v]`` with ``v in R^{d/k}``."""
        d = _check_dim(d, "d")
        k = _check_dim(patch_size, "patch_size")
        if d % k:
            raise ValueError(f"patch_size {k} must divide d = {d} (disjoint patches).")
        n = d // k
        first = np.full((n, d), -1, dtype=np.int64)
        for j in range(n):
            first[j, j * k : (j + 1) * k] = np.arange(k)
        name = f"Network.conv_disjoint_patches(d={d}, patch_size={k}, {activation!r})"
        return cls([first, np.arange(n)[None, :]], activation, label=kw.pop("label", name), **kw)

    @classmethod
    def locally_connected(
        cls, d: int, supports: Sequence[Sequence[int]], activation: str = "relu", **kw: Any
    ) -> Network:
        """Depth-2 network without sharing (in N_no-share): hidden neuron j sees the input
        coordinates ``supports[j]``; ``theta = [w_1, ..., w_k, v]`` with ``w_j`` of length
        ``len(supports[j])``."""
        d = _check_dim(d, "d")
        if not supports:
            raise ValueError("supports must list at least one hidden neuron.")
        first = np.full((len(supports), d), -1, dtype=np.int64)
        nxt = 0
        for j, sup in enumerate(supports):
            cols = np.asarray(list(sup), dtype=np.int64)
            if cols.size == 0 or np.any(cols < 0) or np.any(cols >= d):
                raise ValueError(
                    f"supports[{j}] = {list(sup)!r} must be non-empty indices in [0, {d})."
                )
            if np.unique(cols).size != cols.size:
                raise ValueError(f"supports[{j}] = {list(sup)!r} repeats an input coordinate.")
            first[j, cols] = nxt + np.arange(cols.size)
            nxt += cols.size
        sups = [list(s) for s in supports]
        name = f"Network.locally_connected(d={d}, supports={sups}, {activation!r})"
        k = len(supports)
        return cls([first, np.arange(k)[None, :]], activation, label=kw.pop("label", name), **kw)

    # ---- structure -------------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Input dimension ``d_0``."""
        return self.dims[0]

    @property
    def linear_predictor(self) -> bool:
        """True for ``activation="linear"``: then ``Phi(theta; x) = x . beta``."""
        return self.activation == "linear"

    @property
    def relu(self) -> bool:
        return self.activation == "relu"

    @property
    def hidden_sizes(self) -> list[int]:
        return self.dims[1:-1]

    @property
    def no_share(self) -> bool:
        """Whether the network is in N_no-share: no parameter sits at two positions of a layer."""
        for g in self.patterns:
            ids = g[g >= 0]
            if np.unique(ids).size != ids.size:
                return False
        return True

    @property
    def is_fully_connected(self) -> bool:
        """Dense layers without sharing."""
        return self.no_share and all(np.all(g >= 0) for g in self.patterns)

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        """``[(p_1,), ..., (p_m,)]``; raises ValueError unless ``d`` is the input dimension."""
        if int(d) != self.d:
            raise ValueError(
                f"the network's input dimension is {self.d} (layer 1's pattern has {self.d} "
                f"columns) but X has d = {int(d)} features."
            )
        return [(n,) for n in self.n_layer_params]

    @property
    def n_total(self) -> int:
        return int(self.offsets[-1])

    def _theta(self, params: Any) -> np.ndarray:
        """Flat float64 theta from a flat vector or a list of layers (validated)."""
        if isinstance(params, np.ndarray) and params.ndim == 1:
            theta = np.asarray(params, dtype=np.float64)
        else:
            layers = list(params)
            if len(layers) != self.depth:
                raise ValueError(f"expected {self.depth} layers; got {len(layers)}.")
            for pos, (p, n) in enumerate(zip(layers, self.n_layer_params, strict=True), 1):
                if np.size(p) != n:
                    raise ValueError(f"layer {pos} has {np.size(p)} parameters; expected {n}.")
            theta = self.flatten(layers)
        if theta.shape != (self.n_total,):
            raise ValueError(
                f"theta has {theta.size} entries; the network has {self.n_total} parameters."
            )
        return theta

    def weight_matrices(self, params: Any) -> list[np.ndarray]:
        """``[W^(1), ..., W^(m)]`` with ``W^(l)`` of shape ``(d_l, d_{l-1})`` (Vardi Section 2)."""
        theta = self._theta(params)
        out = []
        for layer, g in enumerate(self.patterns):
            u = theta[self.offsets[layer] : self.offsets[layer + 1]]
            out.append(np.where(g >= 0, u[np.maximum(g, 0)], 0.0))
        return out

    def _natural_layer(self, layer: int, arr: np.ndarray, d: int) -> np.ndarray | None:
        """Layer ``layer`` given as its weight matrix ``W^(l)`` of shape ``(d_l, d_{l-1})``
        (structural zeros zero, shared positions equal), or its transpose when not square."""
        g = self.patterns[layer]
        cand = arr
        if arr.ndim == 2 and arr.shape != g.shape and arr.shape == g.shape[::-1]:
            cand = arr.T
        elif arr.ndim == 1 and g.shape[0] == 1 and arr.size == g.shape[1]:
            cand = arr[None, :]
        if cand.shape != g.shape:
            return None
        if np.any(cand[g < 0] != 0):
            raise ValueError(
                f"init layer {layer + 1} is a {g.shape} weight matrix with nonzero entries where "
                "the network's pattern has no connection."
            )
        u = np.zeros(self.n_layer_params[layer])
        u[g[g >= 0]] = cand[g >= 0]
        if np.any(u[np.maximum(g, 0)][g >= 0] != cand[g >= 0]):
            raise ValueError(
                f"init layer {layer + 1} is a {g.shape} weight matrix that gives a shared "
                "parameter two values."
            )
        return u

    def _natural_layouts(self, layer: int, d: int) -> list[str]:
        return [f"the weight matrix W^({layer + 1}) of shape {self.patterns[layer].shape}"]

    def params_from_weights(
        self, weights: Sequence[np.ndarray], atol: float = 0.0
    ) -> list[np.ndarray]:
        """The layers ``u^(l)`` that produce the weight matrices ``weights`` (the inverse of
        :meth:`weight_matrices`); raises ValueError if a structural zero is nonzero or two
        positions of a shared parameter differ by more than ``atol``."""
        if len(weights) != self.depth:
            raise ValueError(f"expected {self.depth} weight matrices; got {len(weights)}.")
        out = []
        for pos, (W, g, n) in enumerate(
            zip(weights, self.patterns, self.n_layer_params, strict=True), start=1
        ):
            W = np.asarray(W, dtype=np.float64)
            if W.ndim == 1 and g.shape[0] == 1:
                W = W[None, :]
            if W.shape != g.shape:
                raise ValueError(f"weight matrix {pos} has shape {W.shape}; expected {g.shape}.")
            if np.any(np.abs(W[g < 0]) > atol):
                raise ValueError(f"weight matrix {pos} is nonzero at a structural zero.")
            u = np.zeros(n)
            u[g[g >= 0]] = W[g >= 0]
            if np.any(np.abs(u[np.maximum(g, 0)][g >= 0] - W[g >= 0]) > atol):
                raise ValueError(f"weight matrix {pos} gives a shared parameter two values.")
            out.append(u)
        return out

    def _scatters(self):
        """Per layer, a sparse (p_l x positions) 0/1 matrix summing position gradients."""
        if self._scatter is None:
            import scipy.sparse as sp

            mats = []
            for g, n in zip(self.patterns, self.n_layer_params, strict=True):
                flat = g.ravel()
                rows = np.flatnonzero(flat >= 0)
                mats.append(
                    sp.csr_matrix((np.ones(rows.size), (flat[rows], rows)), shape=(n, flat.size))
                )
            self._scatter = mats
        return self._scatter

    # ---- NumPy reference: forward and per-sample Jacobian ----------------------------------
    def _check_X(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(f"X must have shape (N, {self.d}); got {np.shape(X)}.")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or inf; data must be finite.")
        return X

    def _forward(self, theta: np.ndarray, X: np.ndarray, masks=None):
        """Forward pass keeping ``H`` (layer inputs), ``A`` (pre-activations) and ``D``
        (``sigma'`` values) per layer. With ``masks`` (one (N, d_l) array per hidden layer) the
        network is the fixed-pattern multilinear map ``W^(m) D_{m-1} W^(m-1) ... D_1 W^(1) x``."""
        Ws = self.weight_matrices(theta)
        H, A, D = [X], [], []
        h = X
        for layer, W in enumerate(Ws):
            a = h @ W.T
            A.append(a)
            if layer == self.depth - 1:
                break
            if masks is not None:
                dm = np.asarray(masks[layer], dtype=np.float64)
            elif self.relu:
                dm = np.where(a > 0, 1.0, np.where(a == 0, self.relu_grad_at_zero, 0.0))
            else:
                dm = np.ones_like(a)
            D.append(dm)
            h = a * dm
            H.append(h)
        return Ws, H, A, D

    def _backward(self, Ws, H, D, start: int, delta: np.ndarray) -> np.ndarray:
        """Per-sample gradients ``(N, P)`` of a quantity whose derivative with respect to the
        pre-activations of layer ``start`` (0-based) is ``delta`` (N, d_{start+1})."""
        N = H[0].shape[0]
        J = np.zeros((N, self.n_total))
        scat = self._scatters()
        for layer in range(start, -1, -1):
            pos = (delta[:, :, None] * H[layer][:, None, :]).reshape(N, -1)
            J[:, self.offsets[layer] : self.offsets[layer + 1]] = (scat[layer] @ pos.T).T
            if layer > 0:
                delta = (delta @ Ws[layer]) * D[layer - 1]
        return J

    def forward(self, params: Any, X: Any) -> np.ndarray:
        """``Phi(theta; x_n)`` for every row of X, shape (N,)."""
        X = self._check_X(X)
        _, _, A, _ = self._forward(self._theta(params), X)
        return A[-1][:, 0]

    def preactivations(self, params: Any, X: Any) -> list[np.ndarray]:
        """Inputs ``h_l(x_n)`` of the hidden neurons, one (N, d_l) array per hidden layer."""
        X = self._check_X(X)
        _, _, A, _ = self._forward(self._theta(params), X)
        return A[:-1]

    def activation_patterns(self, params: Any, X: Any) -> list[np.ndarray]:
        """Which hidden neurons are active (input > 0) on which samples: (N, d_l) bools."""
        return [a > 0 for a in self.preactivations(params, X)]

    def gradient(
        self, params: Any, X: Any, masks: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """Per-sample Jacobian ``d Phi(theta; x_n) / d theta``, shape (N, P) (NumPy reference).

        ReLU's derivative at 0 is ``relu_grad_at_zero``; ``masks`` fixes every hidden neuron's
        ``sigma'`` per sample instead (the gradient of one smooth piece)."""
        X = self._check_X(X)
        Ws, H, _, D = self._forward(self._theta(params), X, masks)
        return self._backward(Ws, H, D, self.depth - 1, np.ones((X.shape[0], 1)))

    def margins(self, params: Any, X: Any, y: Any) -> np.ndarray:
        """``y_n Phi(theta; x_n)``."""
        return np.asarray(y, dtype=np.float64) * self.forward(params, X)

    def weight_matrices_rows(self, thetas: np.ndarray) -> list[np.ndarray]:
        """:meth:`weight_matrices` of every row of ``thetas`` (K, P): one (K, d_l, d_{l-1})
        array per layer."""
        thetas = np.asarray(thetas, dtype=np.float64)
        out = []
        for layer, g in enumerate(self.patterns):
            u = thetas[:, self.offsets[layer] : self.offsets[layer + 1]]
            # C-contiguous, so each row's matrix has the layout of weight_matrices' (the
            # batched matmul then calls BLAS as the one-row products do)
            out.append(np.ascontiguousarray(np.where(g >= 0, u[:, np.maximum(g, 0)], 0.0)))
        return out

    def forward_rows(
        self, thetas: np.ndarray, X: Any, weights: list[np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """:meth:`forward` and :meth:`preactivations` at every row of ``thetas`` (K, P) in one
        pass: the outputs (K, N) and one (K, N, d_l) array per hidden layer (the same
        products, row by row, as the one-row methods). ``weights``: the rows'
        :meth:`weight_matrices_rows`, when the caller has them."""
        X = self._check_X(X)
        h = X
        hidden = []
        Ws = self.weight_matrices_rows(thetas) if weights is None else weights
        for layer, W in enumerate(Ws):
            a = np.matmul(h, np.swapaxes(W, 1, 2))
            if layer == self.depth - 1:
                return a[:, :, 0], hidden
            hidden.append(a)
            if self.relu:
                dm = np.where(a > 0, 1.0, np.where(a == 0, self.relu_grad_at_zero, 0.0))
            else:
                dm = np.ones_like(a)
            h = a * dm
        raise AssertionError("unreachable")  # pragma: no cover (the last layer returns)

    def neuron_norms_rows(
        self, thetas: np.ndarray, weights: list[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """:meth:`neuron_norms` (incoming) at every row of ``thetas``: one (K, d_l) array per
        hidden layer (``weights`` as in :meth:`forward_rows`)."""
        Ws = self.weight_matrices_rows(thetas) if weights is None else weights
        # the rows of every matrix as one C-contiguous 2-D array: the same row reductions as
        # neuron_norms' (a 3-D reduction over a strided last axis sums in another order)
        return [
            np.linalg.norm(np.ascontiguousarray(W).reshape(-1, W.shape[2]), axis=1).reshape(
                W.shape[:2]
            )
            for W in Ws[:-1]
        ]

    def neuron_norms(self, params: Any, direction: str = "in") -> list[np.ndarray]:
        """Per hidden layer, the norm of every neuron's incoming (``"in"``: row of
        ``W^(l)``) or outgoing (``"out"``: column of ``W^(l+1)``) weight vector."""
        check_choice(direction, "direction", ["in", "out"])
        Ws = self.weight_matrices(params)
        if direction == "in":
            return [np.linalg.norm(W, axis=1) for W in Ws[:-1]]
        return [np.linalg.norm(W, axis=0) for W in Ws[1:]]

    def summary(self, params: Any, X: Any, y: Any) -> dict[str, Any]:
        """Parameter-space diagnostics of one iterate (the columns a history records):
        ``theta_norm``, ``min_margin`` (``min_n y_n Phi``), ``normalized_margin``
        (``min_margin / ||theta||^m``), ``layer_norms``, ``neuron_norms`` (incoming, per hidden
        layer) and ``active`` (per hidden layer, (N, d_l) bools: neuron input > 0)."""
        theta = self._theta(params)
        X = self._check_X(X)
        _, _, A, _ = self._forward(theta, X)
        margins = np.asarray(y, dtype=np.float64) * A[-1][:, 0]
        tn = float(np.linalg.norm(theta))
        return {
            "theta_norm": tn,
            "min_margin": float(margins.min()),
            "normalized_margin": float(margins.min() / tn**self.depth) if tn > 0 else np.nan,
            "layer_norms": self.layer_norms(self.unflatten(theta, self.d)),
            "neuron_norms": self.neuron_norms(theta),
            "active": [a > 0 for a in A[:-1]],
        }

    # ---- the linear-predictor protocol (activation="linear" only) --------------------------
    def _need_linear(self, what: str) -> None:
        if not self.linear_predictor:
            raise ValueError(
                f"{what} exists only for activation='linear': a ReLU network is not a linear "
                "predictor x -> x.beta. Use forward(params, X) and gradient(params, X)."
            )

    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``beta = (W^(m) ... W^(1))^T`` for a linear network."""
        self._need_linear("predictor()")
        Ws = self.weight_matrices(params)
        row = Ws[-1]
        for W in reversed(Ws[:-1]):
            row = row @ W
        return row[0]

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        """``d<G, beta>/d u^(l)`` for every layer (linear networks: ``<G, beta> = Phi(G)``)."""
        self._need_linear("vjp()")
        G = np.asarray(G, dtype=np.float64).reshape(1, -1)
        g = self.gradient(params, G)[0]
        return [g[a:b].copy() for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]

    # ---- compiled runs ---------------------------------------------------------------------
    def _kernel_args(self, n_samples: int = 1) -> tuple:
        """Structure arrays of ``kernels._numba_network.gd_network``. A layer runs through BLAS
        when it is mostly nonzero, has more than one row and column, and is big enough
        (``size * N >= 8192``); other layers loop over their nonzeros (BLAS calls cost more than
        they save on tiny matrices and on the vector-shaped output layer).

        Built once per sample count (and activation) and kept; each call gets its own
        (writable) copies of the arrays."""
        key = (min(int(n_samples), 8192), self.relu, self.relu_grad_at_zero)  # (dense: size*N)
        kept = self.__dict__.setdefault("_kernel_args_kept", {})
        if key not in kept:
            if len(kept) > 8:
                kept.clear()
            kept[key] = self._build_kernel_args(n_samples)
        return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in kept[key])

    def _build_kernel_args(self, n_samples: int) -> tuple:
        gidx, w_off, dense = [], [0], []
        nz_off, nz_row, nz_col, nz_par = [0], [], [], []
        for layer, g in enumerate(self.patterns):
            glob = np.where(g >= 0, g + self.offsets[layer], -1)
            gidx.append(glob.ravel())
            w_off.append(w_off[-1] + g.size)
            nnz = int(np.count_nonzero(g >= 0))
            dense.append(3 * nnz >= g.size and min(g.shape) > 1 and g.size * n_samples >= 8192)
            rows, cols = np.nonzero(g >= 0)
            nz_row.append(rows)
            nz_col.append(cols)
            nz_par.append(glob[rows, cols])
            nz_off.append(nz_off[-1] + rows.size)
        i64 = np.int64
        return (
            np.array(self.dims, dtype=i64),
            np.array(w_off, dtype=i64),
            np.concatenate(gidx).astype(i64),
            np.array(dense, dtype=np.bool_),
            np.array(nz_off, dtype=i64),
            np.concatenate(nz_row).astype(i64),
            np.concatenate(nz_col).astype(i64),
            np.concatenate(nz_par).astype(i64),
            self.relu,
            self.relu_grad_at_zero,
        )

    def runner_xy(
        self, X: np.ndarray, y: np.ndarray, loss: int, precision: str = "float64"
    ) -> Runner:
        """``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor) -> (status,
        fail_step)``: whole chunks of GD steps on ``sum_n l(y_n Phi(theta; x_n))`` (``loss`` 0
        exponential, 1 logistic) or ``1/2 sum_n (Phi(theta; x_n) - y_n)^2`` (``loss`` 2, ``y``
        real targets), with the semantics of ``kernels._reference.gd_model``.
        """
        if precision not in ("float64", "compensated"):
            raise ValueError(
                f"Network runs in float64 or compensated precision; got precision={precision!r}."
            )
        if loss not in (0, 1, 2):
            raise ValueError(f"loss code must be 0, 1 or 2; got {loss!r}.")
        X = self._check_X(X)
        y = np.asarray(y, dtype=np.float64).ravel()
        if y.shape != (X.shape[0],) or not np.all(np.isfinite(y)):
            raise ValueError(f"y must be {X.shape[0]} finite numbers; got shape {np.shape(y)}.")
        if loss != 2 and not np.all(np.abs(y) == 1.0):
            raise ValueError("classification labels y must be -1 or +1 for the margin losses.")
        from ..kernels._numba_network import gd_network

        return generic_runner(
            gd_network,
            X,
            y,
            loss,
            self._kernel_args(X.shape[0]),
            compensated=precision == "compensated",
        )

    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        """The protocol's runner on ``Z = y x`` (classification) or ``X`` (squared loss), for
        linear networks, where ``Phi(theta; y x) = y Phi(theta; x)``."""
        if not self.linear_predictor:
            raise ValueError(
                "a ReLU network has Phi(theta; y x) != y Phi(theta; x), so it cannot run on "
                "Z = y x; use runner_xy(X, y, loss, precision)."
            )
        Z = np.asarray(Z, dtype=np.float64)
        if loss == 2:
            return self.runner_xy(Z, targets, loss, precision)
        return self.runner_xy(Z, np.ones(Z.shape[0]), loss, precision)

    def gradient_data(self, Z: np.ndarray) -> tuple:
        """The generic gradient's arguments; ``Z`` is the input matrix X (the labels go in
        ``targets``): a ReLU network has ``Phi(theta; y x) != y Phi(theta; x)``."""
        from ..kernels._numba_flow import KIND_NETWORK

        self.shapes(Z.shape[1])
        return kernel_data(KIND_NETWORK, Z, net=self._kernel_args(Z.shape[0]))

    # ---- checkpoints ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "patterns": list(self.patterns),
            "n_params": list(self.n_layer_params),
            "activation": self.activation,
            "relu_grad_at_zero": self.relu_grad_at_zero,
            "label": self._label,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Network:
        layers = [(int(n), g) for n, g in zip(config["n_params"], config["patterns"], strict=True)]
        return cls(
            layers,
            config["activation"],
            config["relu_grad_at_zero"],
            label=config.get("label"),
        )

    def __repr__(self) -> str:
        if self._label is not None:
            return self._label
        return (
            f"Network(dims={self.dims}, params={self.n_layer_params}, "
            f"activation={self.activation!r})"
        )


def _check_dim(v: Any, name: str) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {v!r}.")
    return int(v)
