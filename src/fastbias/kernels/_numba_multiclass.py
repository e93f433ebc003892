"""numba kernel: GD on the softmax cross-entropy of a linear multi-class predictor.

Soudry et al. (2018), Section 4.1 and Appendix C: with ``W = [w_1 .. w_K]`` (``d x K``) and
``u_nk = (w_k - w_{y_n}).x_n``,

    L(W) = sum_n log sum_k exp(u_nk)                                            (eq. C.1)

and ``dL/dw_k = sum_n (p_nk - [k = y_n]) x_n`` with the softmax probabilities ``p_nk``. Once the
data are separated every ``p_nk`` (``k != y_n``) is tiny and ``1 - p_{n y_n}`` cancels
catastrophically, so the kernel writes ``1 - p_{n y_n} = sum_{k != y_n} p_nk`` and carries the
gradient as ``exp(log_scale) * X^T Q`` with ``log_scale = max_n r_n``,
``r_n = log sum_{k != y_n} exp(u_nk)`` and ``Q`` bounded by 1 (see
``_reference_optim.multiclass_weights``): no step is lost to underflow before the margins
reach ~700 and the normalized and loss-scaled rules never underflow.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba import _FAST, exp_nonpos
from ._numba_models import record


@njit(nogil=True, cache=True, fastmath=_FAST)
def multiclass_step(X, W, labels, need_sum, U, ubuf, ubits, r, sp, D):
    """``D = X^T Q`` (``d x K``) and ``(log_scale, lsum)`` of ``_reference_optim``'s
    ``multiclass_weights``; ``U`` is ``(N, K)`` scratch, ``r``, ``sp`` length ``N``,
    ``ubuf`` / ``ubits`` length ``N K``."""
    N, d = X.shape
    K = W.shape[1]
    for n in range(N):
        for c in range(K):
            U[n, c] = 0.0
        for j in range(d):
            xj = X[n, j]
            for c in range(K):
                U[n, c] += xj * W[j, c]
    # u_nk relative to the true class; r_n = log sum_{k != y} exp(u_nk)
    s = -np.inf
    for n in range(N):
        y = labels[n]
        uy = U[n, y]
        top = -np.inf
        for c in range(K):
            U[n, c] -= uy
            if c != y and U[n, c] > top:
                top = U[n, c]
        acc = 0.0
        for c in range(K):
            if c != y:
                acc += math.exp(U[n, c] - top)
        r[n] = top + math.log(acc)
        sp[n] = r[n] + math.log1p(math.exp(-r[n])) if r[n] > 0.0 else math.log1p(math.exp(r[n]))
        if not r[n] <= s:
            s = r[n]
    lsum = 0.0
    if not s < np.inf:  # NaN or inf margins: the caller reports divergence
        return s, lsum
    if need_sum:
        for n in range(N):
            x = math.exp(r[n])
            lsum += math.exp(r[n] - s) * (math.log1p(x) / x if x > 1e-300 else 1.0)
    flat = U.reshape(N * K)
    for n in range(N):
        y = labels[n]
        shift = s + sp[n]
        for c in range(K):
            U[n, c] = U[n, c] - shift if c != y else 0.0
    exp_nonpos(flat, N * K, ubuf, ubits)
    for n in range(N):
        y = labels[n]
        tot = 0.0
        for c in range(K):
            if c != y:
                tot += U[n, c]
        U[n, y] = -tot
    for j in range(d):
        for c in range(K):
            D[j, c] = 0.0
    for n in range(N):
        for j in range(d):
            xj = X[n, j]
            for c in range(K):
                D[j, c] += xj * U[n, c]
    return s, lsum


@njit(nogil=True, cache=True, fastmath=_FAST)
def gd_multiclass(X, labels, W, lr, rule, step0, n_steps, rec_steps, rec_W, ceiling):
    """GD on the multi-class cross-entropy; arguments as ``_reference_optim.gd_multiclass``
    except that ``rec_W`` is ``(n_rec, d * K)`` (rows are ``W.ravel()``).

    Trusts its inputs: X (N, d), W (d, K) C-contiguous float64, labels int64 in [0, K).
    """
    N, d = X.shape
    K = W.shape[1]
    U = np.empty((N, K))
    ubuf = np.empty(N * K)
    ubits = ubuf.view(np.int64)
    r = np.empty(N)
    sp = np.empty(N)
    D = np.empty((d, K))
    flat = W.reshape(d * K)
    k = 0
    for t in range(step0, step0 + n_steps):
        s, lsum = multiclass_step(X, W, labels, rule == 2, U, ubuf, ubits, r, sp, D)
        if not s < ceiling:
            return STATUS_DIVERGED, t
        n2 = 0.0
        for j in range(d):
            for c in range(K):
                n2 += D[j, c] * D[j, c]
        if not n2 < np.inf:
            return STATUS_DIVERGED, t
        if rule == 0:
            coef = lr * math.exp(s)
        elif rule == 1:
            coef = lr / math.sqrt(n2) if n2 > 0 else 0.0
        else:
            coef = lr / lsum
        for j in range(d):
            for c in range(K):
                W[j, c] -= coef * D[j, c]
        k = record(flat, t + 1, k, rec_steps, rec_W)
    return STATUS_OK, step0 + n_steps
