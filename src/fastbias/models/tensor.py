"""Linear tensor networks ``f(x) = M(x) o (v_1, ..., v_L)`` (Yun et al. 2021, eq. 6).

The data tensor ``M(x) = sum_j x_j M_j`` maps an input ``x in R^d`` linearly to an order-L
tensor in ``R^{k_1 x ... x k_L}``; the parameters are one vector ``v_l in R^{k_l}`` per mode,
and with the multilinear multiplication of Yun Section 2

    f(x) = M(x) o (v_1, ..., v_L) = x.beta,    beta_j = M_j o (v_1, ..., v_L).

Diagonal, circular convolutional and fully connected linear networks are special cases
(Yun Section 3 and Appendix B); :meth:`Tensor.diagonal`, :meth:`Tensor.convolutional` and
:meth:`Tensor.fully_connected` build their data tensors.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import ConvergenceCondition, Model, Runner, generic_runner
from ._layouts import (
    TensorLayout,
    convolutional_layout,
    diagonal_layout,
    extended_tensor_runner,
    fully_connected_layout,
    normalize_coo,
    tensor_gradient_data,
)
from .convolutional import Convolutional
from .diagonal import Diagonal
from .fully_connected import FullyConnected


def _check_int(value: Any, name: str, low: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    return int(value)


def _check_index_array(arr: Any, name: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers; got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def _is_sparse(M: Any) -> bool:
    """Whether ``M`` is a scipy.sparse matrix or array, without importing scipy.sparse (~0.3 s
    of ``import fastbias``): an object of that kind exists only once it has been imported."""
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(M)


class Tensor(Model):
    """A linear tensor network ``f(x) = M(x) o (v_1, ..., v_L)`` (Yun et al. eq. 6).

    Parameters
    ----------
    M : array, scipy.sparse matrix, or tuple ``(j_idx, multi_idx, values)``
        The data tensor, ``[M(x)]_{i_1..i_L} = sum_j x_j [M]_{j, i_1..i_L}``, in one of three
        forms:

        * a dense array of shape ``(d, k_1, ..., k_L)``, ``L >= 1``;
        * a scipy.sparse matrix (or array) of shape ``(d, k_1 * ... * k_L)`` with
          ``shape=(k_1, ..., k_L)``: column ``c`` is the C-order flattening
          ``np.ravel_multi_index((i_1, ..., i_L), shape)`` (default ``shape=(ncols,)``, L = 1);
        * a COO tuple ``(j_idx, multi_idx, values)`` with ``j_idx`` of shape (nnz,),
          ``multi_idx`` of shape (nnz, L) (0-based ``i_1..i_L``; (nnz,) allowed for L = 1) and
          ``values`` of shape (nnz,), together with ``shape=(d, k_1, ..., k_L)``; repeated
          entries are summed.
    shape : tuple of int, optional
        See ``M``. For a dense ``M`` it may be omitted; if given it must be ``M.shape`` or
        ``M.shape[1:]``.

    Notes
    -----
    ``M`` is stored as COO nonzeros sorted by ``(j, i_1, ..., i_L)``: :attr:`j_idx`,
    :attr:`multi_idx` (nnz, L), :attr:`flat_idx` (C-order flat k-index) and :attr:`values`.
    The predictor ``beta_j = sum_{(j, i)} val * prod_l v_l[i_l]`` and every GD step cost
    ``O(nnz * L)``; the compiled kernel is ``kernels._numba_tensor.gd_tensor``. The layers are
    ``v_l`` of shape ``(k_l,)``; ``depth`` is L (``beta`` is L-homogeneous in the layers).
    """

    name = "tensor"

    def __init__(self, M: Any, shape: Sequence[int] | None = None, *, label: str | None = None):
        if isinstance(M, tuple) and len(M) == 3 and shape is not None:
            d, ks, jidx, multi, vals = self._from_coo(M, shape)
        elif _is_sparse(M):
            d, ks, jidx, multi, vals = self._from_sparse(M, shape)
        else:
            d, ks, jidx, multi, vals = self._from_dense(M, shape)
        if not np.all(np.isfinite(vals)):
            raise ValueError(
                "M contains NaN or inf; every entry of the data tensor must be finite."
            )
        if np.any(jidx < 0) or np.any(jidx >= d):
            bad = jidx[(jidx < 0) | (jidx >= d)][0]
            raise ValueError(f"M has data index j = {bad} outside [0, d = {d}).")
        for layer, k in enumerate(ks):
            col = multi[:, layer]
            if np.any(col < 0) or np.any(col >= k):
                bad = col[(col < 0) | (col >= k)][0]
                raise ValueError(
                    f"M has mode-{layer + 1} index {bad} outside [0, k_{layer + 1} = {k})."
                )
        jidx, multi, vals = normalize_coo(jidx, multi, vals)
        if vals.size == 0:
            raise ValueError("M is all zero: the network would be identically 0.")
        if not np.all(np.isfinite(vals)):
            raise ValueError("M overflows to inf after summing repeated COO entries.")
        if math.prod(ks) >= 2**63:
            raise ValueError(f"k_1 * ... * k_L = {math.prod(ks)} does not fit a 64-bit index.")
        strides = np.array([math.prod(ks[layer + 1 :]) for layer in range(len(ks))], np.int64)
        self.d = int(d)
        self.ks = tuple(int(k) for k in ks)
        self.depth = len(self.ks)
        self.j_idx = np.ascontiguousarray(jidx, dtype=np.int64)
        self.multi_idx = np.ascontiguousarray(multi, dtype=np.int64)
        self.flat_idx = self.multi_idx @ strides
        self.values = np.ascontiguousarray(vals, dtype=np.float64)
        self.offsets = np.concatenate([[0], np.cumsum(self.ks)[:-1]]).astype(np.int64)
        self._label = label
        # the dedicated model a builder's tensor trains like (None for a user M)
        self.equivalent: Model | None = None

    # ---- input forms ----------------------------------------------------------------------
    @staticmethod
    def _from_dense(M, shape):
        try:
            A = np.asarray(M, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                "M must be a dense array (d, k_1, ..., k_L), a scipy.sparse matrix with "
                "shape=(k_1, ..., k_L), or a COO tuple (j_idx, multi_idx, values) with "
                f"shape=(d, k_1, ..., k_L); could not read it as a dense array ({err})."
            ) from err
        if A.ndim < 2:
            raise ValueError(
                f"M must have ndim >= 2 (shape (d, k_1, ..., k_L)); got shape {A.shape}."
            )
        if shape is not None and tuple(shape) not in (A.shape, A.shape[1:]):
            raise ValueError(f"shape={tuple(shape)} does not match M of shape {A.shape}.")
        if 0 in A.shape:
            raise ValueError(f"M has an empty dimension: shape {A.shape}.")
        if not np.all(np.isfinite(A)):
            raise ValueError(
                "M contains NaN or inf; every entry of the data tensor must be finite."
            )
        nz = np.nonzero(A)
        return A.shape[0], A.shape[1:], nz[0], np.stack(nz[1:], axis=1), A[nz]

    @staticmethod
    def _from_sparse(M, shape):
        d, ncols = M.shape
        ks = (ncols,) if shape is None else tuple(_check_int(k, "shape entries") for k in shape)
        if len(ks) < 1:
            raise ValueError("shape must list k_1, ..., k_L with L >= 1 (M needs ndim >= 2).")
        if math.prod(ks) != ncols:
            raise ValueError(
                f"a sparse M of shape ({d}, {ncols}) needs shape=(k_1, ..., k_L) with "
                f"k_1 * ... * k_L = {ncols}; got shape={ks}."
            )
        if d < 1:
            raise ValueError("M has input dimension 0.")
        import scipy.sparse as sp

        C = sp.coo_matrix(M)
        vals = np.asarray(C.data, dtype=np.float64)
        cols = np.asarray(C.col, dtype=np.int64)
        multi = np.stack(np.unravel_index(cols, ks), axis=1).astype(np.int64)
        return d, ks, np.asarray(C.row, dtype=np.int64), multi, vals

    @staticmethod
    def _from_coo(M, shape):
        shape = tuple(_check_int(k, "shape entries") for k in shape)
        if len(shape) < 2:
            raise ValueError(
                f"a COO M needs shape=(d, k_1, ..., k_L) with L >= 1 (ndim >= 2); got {shape}."
            )
        d, ks, L = shape[0], shape[1:], len(shape) - 1
        jidx = _check_index_array(M[0], "j_idx").ravel()
        multi = _check_index_array(M[1], "multi_idx")
        vals = np.asarray(M[2], dtype=np.float64).ravel()
        if multi.ndim == 1 and L == 1:
            multi = multi[:, None]
        if multi.ndim != 2 or multi.shape != (jidx.size, L):
            raise ValueError(
                f"multi_idx must have shape (nnz, L) = ({jidx.size}, {L}); got {multi.shape}."
            )
        if vals.size != jidx.size:
            raise ValueError(f"values has {vals.size} entries but j_idx has {jidx.size}.")
        return d, ks, jidx, multi, vals

    # ---- builders -------------------------------------------------------------------------
    @classmethod
    def diagonal(cls, d: int, L: int) -> Tensor:
        """Diagonal network, Yun eq. 3/11: ``[M_diag(x)]_{j, .., j} = x_j``, zero elsewhere.

        ``v_l = w_l`` and ``beta = w_1 * ... * w_L``: the same parameters and predictor as
        ``fastbias.models.Diagonal(L)``.

        Parameters
        ----------
        d : input dimension (``k_l = d`` for every layer).
        L : depth.

        Returns
        -------
        Tensor
            With ``nnz = d``.
        """
        d = _check_int(d, "d")
        L = _check_int(L, "L")
        return cls._from_layout(
            diagonal_layout(d, L), f"Tensor.diagonal(d={d}, L={L})", Diagonal(L)
        )

    @classmethod
    def convolutional(cls, d: int, kernel_sizes: int | Sequence[int]) -> Tensor:
        """Circular convolutional network, Yun eq. 4/12 (Gunasekar et al. 2018, eq. 2).

        ``f(x) = (..((x * w_1) * w_2) .. * w_{L-1}).w_L`` with the circular cross-correlation
        ``(h * w)[i] = sum_{p < k} w[p] h[(i + p) mod d]`` (0-based), so that
        ``[M_conv(x)]_{i_1..i_L} = x[(i_1 + ... + i_L) mod d]`` (Yun Section 3, shifted to
        0-based indices) and ``v_l = w_l``.

        Parameters
        ----------
        d : input dimension.
        kernel_sizes : list of the L filter sizes ``k_l <= d`` with ``k_L = d``, or an int L
            for the full-width network (``k_l = d`` for all l).

        Returns
        -------
        Tensor
            With ``nnz = k_1 * ... * k_L``.
        """
        d = _check_int(d, "d")
        if isinstance(kernel_sizes, (int, np.integer)) and not isinstance(kernel_sizes, bool):
            ks = [d] * _check_int(kernel_sizes, "depth")
        else:
            ks = [_check_int(k, "kernel sizes") for k in kernel_sizes]
            if not ks:
                raise ValueError("kernel_sizes must list at least one filter size.")
            if any(k > d for k in ks) or ks[-1] != d:
                raise ValueError(
                    f"kernel sizes must be <= d = {d} with the last equal to d; got {ks}."
                )
        return cls._from_layout(
            convolutional_layout(d, ks),
            f"Tensor.convolutional(d={d}, kernel_sizes={ks})",
            Convolutional(len(ks), ks[:-1] if len(ks) > 1 else None),
        )

    @classmethod
    def fully_connected(cls, d: int, widths: Sequence[int] = ()) -> Tensor:
        """Fully connected network, Yun eq. 5/10 and Appendix B, in fastbias's C-order layout.

        ``beta = W_1 W_2 ... W_{L-1} w_L`` with ``W_l`` of shape ``(d_l, d_{l+1})``
        (``d_1 = d``, ``d_{l+1} = widths[l-1]``), ``L = len(widths) + 1``. The layers are
        ``v_l = W_l.ravel()`` (C order, row-major: ``v_l[r d_{l+1} + c] = W_l[r, c]``) and
        ``v_L = w_L``, exactly the flattened layers of ``fastbias.models.FullyConnected``, so
        iterates compare directly. The nonzeros of ``M_fc`` are, for every path
        ``(c_1, ..., c_L)`` with ``c_l in [0, d_l)``,

            [M_fc(x)]_{i_1..i_L} = x[c_1],  i_l = c_l d_{l+1} + c_{l+1} (l < L),  i_L = c_L.

        Yun's Appendix B uses ``v_l = vec(W_l)`` (column-major: ``i_l = c_l + d_l c_{l+1}``);
        this ``M`` is Yun's ``M_fc`` with every mode permuted by the vec -> C-order
        permutation, which leaves the network unchanged.

        Parameters
        ----------
        d : input dimension ``d_1``.
        widths : hidden widths ``d_2, ..., d_L`` (as for ``FullyConnected(widths)``); ``[]``
            gives the linear model.

        Returns
        -------
        Tensor
            Of depth ``len(widths) + 1`` with ``nnz = d * prod(widths)`` (the number of input
            to output paths; every step costs ``O(nnz * L)``, against ``O(sum_l d_l d_{l+1})``
            for ``FullyConnected``).
        """
        d = _check_int(d, "d")
        widths = [_check_int(w, "widths") for w in widths]
        return cls._from_layout(
            fully_connected_layout(d, widths),
            f"Tensor.fully_connected(d={d}, widths={widths})",
            FullyConnected(list(widths)),
        )

    @classmethod
    def _from_layout(cls, layout: TensorLayout, label: str, equivalent: Model | None) -> Tensor:
        out = cls(
            (layout.j_idx, layout.multi_idx, layout.values), (layout.d, *layout.ks), label=label
        )
        out.equivalent = equivalent
        return out

    # ---- structure ------------------------------------------------------------------------
    @property
    def nnz(self) -> int:
        """Number of stored nonzeros of ``M``."""
        return int(self.values.size)

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        """``[(k_1,), ..., (k_L,)]``; raises ValueError unless ``d`` is M's input dimension."""
        if int(d) != self.d:
            raise ValueError(
                f"M has input dimension {self.d} but X has d = {int(d)}; the data tensor must "
                "have one slice M_j per input feature."
            )
        return [(k,) for k in self.ks]

    def to_dense(self) -> np.ndarray:
        """``M`` as a dense array of shape ``(d, k_1, ..., k_L)``."""
        A = np.zeros((self.d, *self.ks))
        A[(self.j_idx, *self.multi_idx.T)] = self.values
        return A

    def data_tensor(self, x: np.ndarray) -> np.ndarray:
        """The dense data tensor ``M(x) = sum_j x_j M_j`` of shape ``(k_1, ..., k_L)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.d,):
            raise ValueError(f"x must have shape ({self.d},); got {x.shape}.")
        A = np.zeros(self.ks)
        np.add.at(A, tuple(self.multi_idx.T), x[self.j_idx] * self.values)
        return A

    def _factors(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``F[n, l] = v_l[i_l(n)]`` for every nonzero n."""
        if len(params) != self.depth:
            raise ValueError(f"expected {self.depth} layers; got {len(params)}.")
        F = np.empty(self.multi_idx.shape)
        for layer, (p, k) in enumerate(zip(params, self.ks, strict=True)):
            v = np.asarray(p, dtype=np.float64).ravel()
            if v.size != k:
                raise ValueError(f"layer {layer + 1} has {v.size} entries; expected k = {k}.")
            F[:, layer] = v[self.multi_idx[:, layer]]
        return F

    # ---- the map P and its derivative (NumPy references) ---------------------------------
    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``beta_j = M_j o (v_1, ..., v_L)`` (Yun eq. 6: ``f(x) = x.beta``)."""
        F = self._factors(params)
        return np.bincount(self.j_idx, weights=self.values * np.prod(F, axis=1), minlength=self.d)

    def _predictor_of_theta(self, theta: np.ndarray, d: int) -> np.ndarray | None:
        """:meth:`predictor` of the flat ``theta``, its factors gathered at once (the same
        products and sums)."""
        theta = np.asarray(theta)
        if theta.dtype != np.float64 or theta.shape != (sum(self.ks),):
            return None
        F = theta[self.multi_idx + self.offsets[None, :]]  # F[n, l] = v_l[i_l(n)]
        return np.bincount(self.j_idx, weights=self.values * np.prod(F, axis=1), minlength=self.d)

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        self.shapes(d)
        thetas = np.asarray(thetas)
        K = thetas.shape[0]
        F = thetas[:, self.multi_idx + self.offsets[None, :]]  # (K, nnz, L)
        weights = self.values * np.prod(F, axis=2)
        out = np.zeros((K, self.d), dtype=weights.dtype)
        np.add.at(out, (np.arange(K)[:, None], self.j_idx[None, :]), weights)
        return out

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        """``d<G, beta>/dv_l = M(G) o (v_1, .., I_{k_l}, .., v_L)`` (Yun Section 3, gradient flow
        with ``G = -X^T r``), from prefix and suffix products per nonzero."""
        F = self._factors(params)
        w = np.asarray(G, dtype=np.float64)[self.j_idx] * self.values
        ones = np.ones((F.shape[0], 1))
        prefix = np.cumprod(np.hstack([ones, F[:, :-1]]), axis=1)  # prod_{k<l} v_k
        suffix = np.cumprod(np.hstack([ones, F[:, :0:-1]]), axis=1)[:, ::-1]  # prod_{k>l} v_k
        contrib = w[:, None] * prefix * suffix
        return [
            np.bincount(self.multi_idx[:, layer], weights=contrib[:, layer], minlength=k)
            for layer, k in enumerate(self.ks)
        ]

    # ---- theory ---------------------------------------------------------------------------
    def convergence_condition(
        self, params: Sequence[np.ndarray], task: str = "classification"
    ) -> ConvergenceCondition | None:
        """None: the orthogonal decomposition of Yun Assumption 1 (``S``, ``U_l``) is not known
        for a general ``M``, so neither Theorem 2's (classification) nor Theorem 5's
        (regression) initial condition can be stated."""
        return None

    # ---- compiled runs --------------------------------------------------------------------
    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        """Bind ``kernels._numba_tensor.gd_tensor`` to the data; ``precision="extended"``
        (exp or logistic loss): the long double C kernel ``fb_gd_tensor_ld``
        (``csrc/fb_deep_ld.c``)."""
        self.shapes(np.shape(Z)[1])
        if precision == "extended":
            return self.extended_runner(Z, loss)
        if precision not in ("float64", "compensated"):
            raise ValueError(
                "Tensor models run in float64, compensated or extended precision; got "
                f"{precision!r}."
            )
        from ..kernels._deep import gd_tensor

        extra = (self.j_idx, self.multi_idx, self.values, self.offsets)
        return generic_runner(
            gd_tensor, Z, targets, loss, extra, compensated=precision == "compensated"
        )

    def extended_runner(self, Z: np.ndarray, loss: int) -> Runner:
        """The long double run (``kernels._c.gd_tensor_extended``) on ``Z = y x``."""
        return extended_tensor_runner(self.layout(), Z, loss)

    def layout(self) -> TensorLayout:
        """``M`` as a :class:`~fastbias.models._layouts.TensorLayout` (the arrays, not copies)."""
        out = TensorLayout.__new__(TensorLayout)
        out.d, out.ks = self.d, self.ks
        out.j_idx, out.multi_idx, out.values, out.offsets = (
            self.j_idx,
            self.multi_idx,
            self.values,
            self.offsets,
        )
        return out

    def gradient_data(self, Z: np.ndarray) -> tuple:
        self.shapes(np.shape(Z)[1])
        return tensor_gradient_data(self.layout(), Z)

    # ---- checkpoints ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "shape": [self.d, *self.ks],
            "j_idx": self.j_idx,
            "multi_idx": self.multi_idx,
            "values": self.values,
            "label": self._label,
        }
        if self.equivalent is not None:
            cfg["equivalent"] = self.equivalent  # a Model: the registry stores it nested
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tensor:
        out = cls(
            (config["j_idx"], config["multi_idx"], config["values"]),
            tuple(config["shape"]),
            label=config.get("label"),
        )
        out.equivalent = config.get("equivalent")
        return out

    def __repr__(self) -> str:
        if self._label is not None:
            return self._label
        return f"Tensor(d={self.d}, shape={self.ks}, nnz={self.nnz})"
