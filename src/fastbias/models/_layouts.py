"""Data tensors of the dedicated models as sparse COO arrays (Yun et al. 2021, Section 3).

The diagonal, convolutional, fully connected and low-rank models are tensor networks
``f(x) = M(x) o (v_1, ..., v_L)`` (Yun eq. 6) with a fixed data tensor ``M``. These functions
build ``M`` in the normal form :class:`~fastbias.models.Tensor` stores (nonzeros sorted by
``(j, i_1, ..., i_L)``, repeated entries summed, zeros dropped), so that the dedicated models
can run the tensor kernels (long double precision, the generic gradient of flow and the
optimizers) without importing :mod:`fastbias.models.tensor`, and the tensor models built from
them (``Tensor.diagonal`` ...) hold the same arrays in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "TensorLayout",
    "normalize_coo",
    "diagonal_layout",
    "convolutional_layout",
    "fully_connected_layout",
    "low_rank_layout",
]


class TensorLayout:
    """A data tensor ``M`` of shape ``(d, k_1, ..., k_L)`` in normal COO form.

    Attributes: ``d``, ``ks``, ``j_idx`` (nnz,), ``multi_idx`` (nnz, L), ``values`` (nnz,),
    ``offsets`` (L,): where layer l starts in the flat ``theta``.
    """

    __slots__ = ("d", "ks", "j_idx", "multi_idx", "values", "offsets")

    def __init__(self, d: int, ks: Sequence[int], j_idx, multi_idx, values):
        self.d = int(d)
        self.ks = tuple(int(k) for k in ks)
        self.j_idx, self.multi_idx, self.values = normalize_coo(j_idx, multi_idx, values)
        self.offsets = np.concatenate([[0], np.cumsum(self.ks)[:-1]]).astype(np.int64)

    def positions(self) -> np.ndarray:
        """``pos[n, l] = offsets[l] + i_l(n)``: where ``v_l[i_l]`` sits in ``theta``."""
        return np.ascontiguousarray(self.multi_idx + self.offsets[None, :], dtype=np.int64)


def normalize_coo(j_idx, multi_idx, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort nonzeros by ``(j, i_1, ..., i_L)``, sum repeated entries and drop zeros.

    Inputs are validated by the caller (indices in range, values finite).
    """
    jidx = np.asarray(j_idx, dtype=np.int64)
    multi = np.asarray(multi_idx, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    L = multi.shape[1]
    order = np.lexsort([multi[:, c] for c in range(L - 1, -1, -1)] + [jidx])
    jidx, multi, vals = jidx[order], multi[order], vals[order]
    if jidx.size > 1:
        new = np.ones(jidx.size, dtype=bool)
        new[1:] = (jidx[1:] != jidx[:-1]) | np.any(multi[1:] != multi[:-1], axis=1)
        starts = np.flatnonzero(new)
        vals = np.add.reduceat(vals, starts)
        jidx, multi = jidx[starts], multi[starts]
    keep = vals != 0
    return (
        np.ascontiguousarray(jidx[keep], dtype=np.int64),
        np.ascontiguousarray(multi[keep], dtype=np.int64),
        np.ascontiguousarray(vals[keep], dtype=np.float64),
    )


def diagonal_layout(d: int, L: int) -> TensorLayout:
    """Yun eq. 3/11: ``[M(x)]_{j, .., j} = x_j``; ``beta = w_1 * ... * w_L``."""
    j = np.arange(d, dtype=np.int64)
    return TensorLayout(d, (d,) * L, j, np.repeat(j[:, None], L, axis=1), np.ones(d))


def convolutional_layout(d: int, ks: Sequence[int]) -> TensorLayout:
    """Yun eq. 4/12: ``[M(x)]_{i_1..i_L} = x[(i_1 + ... + i_L) mod d]`` (filters ``k_l``,
    ``k_L = d``)."""
    ks = [int(k) for k in ks]
    multi = np.indices(ks).reshape(len(ks), -1).T.astype(np.int64)
    jidx = multi.sum(axis=1) % d
    return TensorLayout(d, ks, jidx, multi, np.ones(jidx.size))


def fully_connected_layout(d: int, widths: Sequence[int]) -> TensorLayout:
    """Yun eq. 5/10 in fastbias's C-order layout (see ``Tensor.fully_connected``): one
    nonzero per input-to-output path ``(c_1, ..., c_L)``."""
    dims = [int(d), *(int(w) for w in widths)]
    L = len(dims)
    paths = np.indices(dims).reshape(L, -1).T.astype(np.int64)
    multi = np.empty_like(paths)
    for layer in range(L - 1):
        multi[:, layer] = paths[:, layer] * dims[layer + 1] + paths[:, layer + 1]
    multi[:, L - 1] = paths[:, L - 1]
    ks = [dims[layer] * dims[layer + 1] for layer in range(L - 1)] + [dims[-1]]
    return TensorLayout(d, ks, paths[:, 0], multi, np.ones(paths.shape[0]))


def low_rank_layout(d1: int, d2: int, rank: int) -> TensorLayout:
    """Matrix sensing ``f(x) = <mat(x), U V^T>`` with ``U (d1, r)``, ``V (d2, r)`` row-major:
    ``[M(x)]_{(a r + k), (b r + k)} = x[a d2 + b]`` (``v_1 = U.ravel()``, ``v_2 = V.ravel()``)."""
    a, b, k = np.indices((d1, d2, rank)).reshape(3, -1)
    multi = np.stack([a * rank + k, b * rank + k], axis=1).astype(np.int64)
    jidx = (a * d2 + b).astype(np.int64)
    return TensorLayout(d1 * d2, (d1 * rank, d2 * rank), jidx, multi, np.ones(jidx.size))


def extended_tensor_runner(layout: TensorLayout, Z: np.ndarray, loss: int):
    """The long double tensor kernel (``kernels._c.gd_tensor_extended``) bound to ``Z``.

    ``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor) -> (status, step)``
    with ``theta`` and ``rec_theta`` of dtype ``np.longdouble``.
    """
    if loss not in (0, 1):
        raise ValueError(
            "precision='extended' is for the exp and logistic losses; got the squared loss."
        )
    from ..exceptions import FastbiasError
    from ..kernels import _c

    if not _c.available():
        raise FastbiasError(
            "precision='extended' needs the compiled C extension fastbias._cext; "
            "reinstall fastbias with `pip install .` on a machine with a C compiler."
        )
    Zk = np.ascontiguousarray(Z, dtype=np.longdouble)
    jidx = np.ascontiguousarray(layout.j_idx, dtype=np.int64)
    pos = layout.positions()
    vals = np.ascontiguousarray(layout.values, dtype=np.longdouble)

    def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
        return _c.gd_tensor_extended(
            Zk, theta, jidx, pos, vals, lr, loss, rule, step0, n_steps, rec_steps,
            rec_theta, floor,
        )  # fmt: skip

    return run


def extended_factored_runner(name: str, Z: np.ndarray, loss: int, args: tuple):
    """The long double kernel ``kernels._c.gd_<name>_extended`` in factored form (``name``
    ``"diagonal"`` or ``"fc"``, csrc/fb_deep_ld.c) bound to ``Z`` and the model's ``args``, or
    None when the C extension lacks it (a build older than the Python code).

    ``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor) -> (status, step)``
    with ``theta`` and ``rec_theta`` of dtype ``np.longdouble``, as
    :func:`extended_tensor_runner`'s.
    """
    from ..kernels import _c

    if loss not in (0, 1) or not _c.available() or not hasattr(_c.lib, f"fb_gd_{name}_ld"):
        return None
    fn = getattr(_c, f"gd_{name}_extended")
    Zk = np.ascontiguousarray(Z, dtype=np.longdouble)

    def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
        return fn(Zk, theta, *args, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor)

    return run


def tensor_gradient_data(layout: TensorLayout, Z: np.ndarray) -> tuple:
    """The generic-gradient arguments (see ``Model.gradient_data``) of a tensor network."""
    from ..kernels._numba_flow import KIND_TENSOR
    from ._base import kernel_data

    return kernel_data(
        KIND_TENSOR, Z, pos=layout.positions(), jidx=layout.j_idx, vals=layout.values
    )
