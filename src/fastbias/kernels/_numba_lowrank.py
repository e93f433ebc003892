"""numba GD kernel of the factorized (matrix sensing) model ``beta = vec(U V^T)``.

The skeleton of :mod:`fastbias.kernels._numba_models` (predict, shared step, VJP, apply,
record) with the model's predictor and vector-Jacobian product; ``theta = [U.ravel(),
V.ravel()]`` with ``U`` of shape ``(d1, r)`` and ``V`` of shape ``(d2, r)``, row-major, and
``x`` read as the ``(d1, d2)`` matrix ``x.reshape(d1, d2)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba import _FAST
from ._numba_models import predictor_step_scaled, record_scaled, take_step


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


@njit(nogil=True, cache=True)
def gd_low_rank(
    Z,
    targets,
    theta,
    lr,
    loss,
    rule,
    step0,
    n_steps,
    rec_steps,
    rec_theta,
    floor,
    scale,
    rec_scale,
    lo,
    d1,
    d2,
    rank,
):
    """GD on ``f(x) = <mat(x), U V^T>`` with ``theta = 2**scale[0] * theta_s`` and, when ``lo``
    is not empty, compensated updates; arguments as ``_numba_models.gd_diagonal``.

    Trusts its inputs: Z (N, d1 d2) and theta ((d1 + d2) r,) C-contiguous float64.
    """
    N, d = Z.shape
    ZT = np.ascontiguousarray(Z.T)
    m = np.empty(N)
    ubuf = np.empty(N)
    ubits = ubuf.view(np.int64)
    a = np.empty(N)
    G = np.empty(d)
    beta = np.empty(d)
    g = np.empty(theta.shape[0])
    k = 0
    for t in range(step0, step0 + n_steps):
        low_rank_predictor(theta, d1, d2, rank, beta)
        ok, log_scale, lsum = predictor_step_scaled(
            ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G, scale[0] * 2
        )
        if not ok:
            return STATUS_DIVERGED, t
        low_rank_vjp(theta, G, d1, d2, rank, g)
        if not take_step(theta, lo, g, lr, rule, log_scale, lsum, scale, 2):
            return STATUS_DIVERGED, t
        k = record_scaled(theta, t + 1, k, rec_steps, rec_theta, scale, rec_scale)
    return STATUS_OK, step0 + n_steps
