"""Plain-NumPy reference of ``_numba_softmax_net``: the specification its kernels are tested
against (same arguments, one NumPy expression per operation, one Python iteration per step).

Depth-2 ReLU network ``F(x) = W2 relu(W1 x)`` with ``C`` outputs, mean softmax cross-entropy
(Soudry et al. 2018, eq. C.1 over ``N``), heavy-ball momentum ``beta`` (0: GD).
"""

from __future__ import annotations

import numpy as np

from . import STATUS_DIVERGED, STATUS_OK


def softmax_terms(F: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``U`` with ``U[n, k] = F[n, k] - F[n, y_n]`` (``-inf`` at ``k = y_n``) and
    ``r_n = log sum_{k != y_n} exp(U[n, k])`` by log-sum-exp."""
    N = F.shape[0]
    rows = np.arange(N)
    U = F - F[rows, labels][:, None]
    U[rows, labels] = -np.inf
    top = U.max(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        r = top + np.log(np.sum(np.exp(U - top[:, None]), axis=1))
    return U, r


def softplus(r: np.ndarray) -> np.ndarray:
    """``log(1 + e^r)`` without overflow or cancellation."""
    return np.where(r > 0, r + np.log1p(np.exp(-np.abs(r))), np.log1p(np.exp(np.minimum(r, 0))))


def log_softplus(r: np.ndarray) -> np.ndarray:
    """``log softplus(r)``, finite for finite ``r`` (series form below ``r = -30``)."""
    r = np.asarray(r, dtype=np.float64)
    out = np.empty_like(r)
    small = r < -30.0
    e = np.exp(r[small])
    out[small] = r[small] + np.log1p(-0.5 * e + e * e / 3.0)
    out[~small] = np.log(softplus(r[~small]))
    return out


def loss_gradient(F: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """``dL/dF`` of the mean cross-entropy and ``max_n r_n``."""
    N = F.shape[0]
    U, r = softmax_terms(F, labels)
    sp = softplus(r)
    G = np.exp(U - sp[:, None]) / N
    G[np.arange(N), labels] = -G.sum(axis=1)
    return G, float(r.max())


def softmax_net_step(
    X: np.ndarray, labels: np.ndarray, W1: np.ndarray, W2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(gW1, gW2, max_n r_n)``: the gradient of the mean cross-entropy at ``(W1, W2)``."""
    A = X @ W1.T
    Hr = np.maximum(A, 0.0)
    F = Hr @ W2.T
    G, top = loss_gradient(F, labels)
    gW2 = G.T @ Hr
    dH = (G @ W2) * (A > 0)
    gW1 = dH.T @ X
    return gW1, gW2, top


def softmax_net_run(
    X, labels, W1, W2, V1, V2, lr, beta, step0, n_steps, rec_steps, rec_theta, ceiling
):
    """Reference of ``_numba_softmax_net.softmax_net_run`` (same arguments and state)."""
    k = int(np.searchsorted(rec_steps, step0, side="right"))
    for t in range(step0, step0 + n_steps):
        with np.errstate(invalid="ignore", over="ignore"):
            gW1, gW2, top = softmax_net_step(X, labels, W1, W2)
        if not top < ceiling:
            return STATUS_DIVERGED, t
        V1[:] = beta * V1 - lr * gW1
        W1 += V1
        V2[:] = beta * V2 - lr * gW2
        W2 += V2
        if k < len(rec_steps) and rec_steps[k] == t + 1:
            rec_theta[k] = np.concatenate([W1.ravel(), W2.ravel()])
            k += 1
    return STATUS_OK, step0 + n_steps


def softmax_net_evaluate(X, labels, W1, W2) -> tuple[float, int, float]:
    """Reference of ``_numba_softmax_net.softmax_net_evaluate``."""
    F = np.maximum(X @ W1.T, 0.0) @ W2.T
    U, r = softmax_terms(F, labels)
    top = U.max(axis=1)
    ls = log_softplus(r)
    mx = ls.max()
    log_loss = float(mx + np.log(np.sum(np.exp(ls - mx))) - np.log(len(ls)))
    return log_loss, int(np.sum(~(top < 0))), float(-top.max())
