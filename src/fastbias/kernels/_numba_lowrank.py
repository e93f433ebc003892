"""numba GD kernel of the factorized (matrix sensing) model ``beta = vec(U V^T)``.

The loop of :mod:`fastbias.kernels._numba_models` (``gd_loop``: predict, shared step, VJP,
apply, record) with the model's predictor and vector-Jacobian product; ``theta = [U.ravel(),
V.ravel()]`` with ``U`` of shape ``(d1, r)`` and ``V`` of shape ``(d2, r)``, row-major, and
``x`` read as the ``(d1, d2)`` matrix ``x.reshape(d1, d2)``.
"""

from __future__ import annotations

from numba import njit

from ._numba import _FAST
from ._numba_models import gd_loop


@njit(nogil=True, cache=True, fastmath=_FAST)
def low_rank_predictor(theta, d1, d2, rank, beta):
    """``beta[a d2 + b] = sum_k U[a, k] V[b, k]``."""
    U = theta[: d1 * rank].reshape((d1, rank))
    V = theta[d1 * rank : (d1 + d2) * rank].reshape((d2, rank))
    for a in range(d1):
        for b in range(d2):
            acc = 0.0
            for k in range(rank):
                acc += U[a, k] * V[b, k]
            beta[a * d2 + b] = acc


@njit(nogil=True, cache=True, fastmath=_FAST)
def low_rank_vjp(theta, G, d1, d2, rank, g):
    """``g_U = mat(G) V`` and ``g_V = mat(G)^T U``: the gradient of ``<G, vec(U V^T)>``."""
    U = theta[: d1 * rank].reshape((d1, rank))
    V = theta[d1 * rank : (d1 + d2) * rank].reshape((d2, rank))
    gU = g[: d1 * rank].reshape((d1, rank))
    gV = g[d1 * rank : (d1 + d2) * rank].reshape((d2, rank))
    for i in range((d1 + d2) * rank):
        g[i] = 0.0
    for a in range(d1):
        for b in range(d2):
            Gab = G[a * d2 + b]
            for k in range(rank):
                gU[a, k] += Gab * V[b, k]
                gV[b, k] += Gab * U[a, k]


@njit(inline="always")
def low_rank_beta(theta, model, beta):
    """:func:`low_rank_predictor` for ``_numba_models.gd_loop``; ``model = (d1, d2, rank)``."""
    d1, d2, rank = model
    low_rank_predictor(theta, d1, d2, rank, beta)


@njit(inline="always")
def low_rank_grad(theta, model, G, g):
    """:func:`low_rank_vjp` for ``_numba_models.gd_loop``."""
    d1, d2, rank = model
    low_rank_vjp(theta, G, d1, d2, rank, g)


@njit(nogil=True, cache=True)
def gd_low_rank(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
                scale, rec_scale, lo, d1, d2, rank):  # fmt: skip
    """GD on ``f(x) = <mat(x), U V^T>`` with ``theta = 2**scale[0] * theta_s`` and, when ``lo``
    is not empty, compensated updates; arguments as ``_numba_models.gd_diagonal``.

    Trusts its inputs: Z (N, d1 d2) and theta ((d1 + d2) r,) C-contiguous float64.
    """
    return gd_loop(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, 2, low_rank_beta, low_rank_grad, (d1, d2, rank),
    )  # fmt: skip
