"""numba kernels: GD (heavy-ball momentum optional) on the softmax cross-entropy of a depth-2
ReLU network with ``C`` outputs, whole runs in one nopython, nogil call.

The network is ``F(x) = W2 relu(W1 x)`` with ``W1`` (``H x d``) and ``W2`` (``C x H``) and no
biases, so it is positively homogeneous of degree 2 in ``theta = (W1, W2)``; every output is a
depth-2 network of the class N of Vardi et al. (2022, Section 2) and the outputs share the
hidden layer. The loss is the mean softmax cross-entropy (Soudry et al. 2018, eq. C.1 divided
by ``N``), written with ``u_nk = F_k(x_n) - F_{y_n}(x_n)``:

    L(theta) = (1/N) sum_n log(1 + sum_{k != y_n} exp(u_nk)).

It is evaluated in log domain: ``r_n = log sum_{k != y_n} exp(u_nk)`` by log-sum-exp,
``l_n = softplus(r_n)``, and the softmax probabilities ``p_nk = exp(u_nk - l_n)`` for
``k != y_n`` (no exponential of a positive number, nothing overflows far past zero training
error); ``p_{n y_n} - 1 = -sum_{k != y_n} p_nk`` is formed from the small terms, never as the
difference of two numbers near 1.

Step (``_reference_softmax_net.softmax_net_step`` is the specification):

    G = dL/dF (N x C),  gW2 = G^T Hr,  gW1 = ((G W2) * [A > 0])^T X,
    V <- beta V - lr g,  theta <- theta + V          (beta = 0: plain GD)

with ``A = X W1^T`` the hidden pre-activations and ``Hr = relu(A)`` (``relu'(0) = 0``). The
four large products go through BLAS (``np.dot`` with ``out=``); see ``bench`` for the
comparison with hand-written loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK


@njit(nogil=True, cache=True)
def forward(X, W1, W2, A, Hr, F):
    """``A = X W1^T`` (N x H), ``Hr = relu(A)``, ``F = Hr W2^T`` (N x C), into the buffers."""
    np.dot(X, W1.T, A)
    N, H = A.shape
    for n in range(N):
        for j in range(H):
            a = A[n, j]
            Hr[n, j] = a if a > 0.0 else 0.0
    np.dot(Hr, W2.T, F)


@njit(nogil=True, cache=True)
def softmax_terms(F, labels, n, u):
    """``r_n = log sum_{k != y_n} exp(u_nk)`` and ``u`` (length C) = ``u_nk`` for sample n;
    ``u[y_n] = -inf``."""
    C = F.shape[1]
    y = labels[n]
    fy = F[n, y]
    top = -np.inf
    for k in range(C):
        if k == y:
            u[k] = -np.inf
        else:
            v = F[n, k] - fy
            u[k] = v
            if v > top:
                top = v
    if not (top > -np.inf and top < np.inf):  # NaN / inf outputs: the caller reports it
        return top
    acc = 0.0
    for k in range(C):
        if k != y:
            acc += math.exp(u[k] - top)
    return top + math.log(acc)


@njit(nogil=True, cache=True)
def softplus(r):
    """``log(1 + e^r)`` without overflow or cancellation."""
    if r > 0.0:
        return r + math.log1p(math.exp(-r))
    return math.log1p(math.exp(r))


@njit(nogil=True, cache=True)
def log_softplus(r):
    """``log(softplus(r))``, finite for every finite ``r`` (``r + log1p(-e^r/2 + ...)`` far
    below 0, where ``softplus(r)`` underflows)."""
    if r < -30.0:
        e = math.exp(r)
        return r + math.log1p(-0.5 * e + e * e / 3.0)
    return math.log(softplus(r))


@njit(nogil=True, cache=True)
def loss_gradient(F, labels, G, u):
    """``G = dL/dF`` of the mean cross-entropy (in place) and ``max_n r_n`` (NaN/inf when the
    outputs are not finite)."""
    N, C = F.shape
    inv_n = 1.0 / N
    top = -np.inf
    for n in range(N):
        r = softmax_terms(F, labels, n, u)
        if not r < np.inf:
            return r
        if r > top:
            top = r
        sp = softplus(r)
        tot = 0.0
        for k in range(C):
            if u[k] > -np.inf:
                p = math.exp(u[k] - sp) * inv_n
                G[n, k] = p
                tot += p
        G[n, labels[n]] = -tot
    return top


@njit(nogil=True, cache=True)
def softmax_net_run(
    X, labels, W1, W2, V1, V2, lr, beta, step0, n_steps, rec_steps, rec_theta, ceiling
):
    """``n_steps`` steps from step ``step0``; ``W1, W2, V1, V2`` updated in place.

    ``rec_theta`` row k receives ``[W1.ravel(), W2.ravel()]`` after step ``rec_steps[k]``
    (rows for the steps this call reaches, in order). Returns ``(status, step)``:
    ``STATUS_DIVERGED`` and the failing step when some ``r_n`` reaches ``ceiling`` or the
    outputs stop being finite (the parameters then hold the iterate before that step).

    Trusts its inputs: X (N, d), W1/V1 (H, d), W2/V2 (C, H) C-contiguous float64, labels int64
    in [0, C), rec_theta (len(rec_steps), H d + C H).
    """
    N, d = X.shape
    H = W1.shape[0]
    C = W2.shape[0]
    A = np.empty((N, H))
    Hr = np.empty((N, H))
    F = np.empty((N, C))
    G = np.empty((N, C))
    gW1 = np.empty((H, d))
    gW2 = np.empty((C, H))
    u = np.empty(C)
    p1 = H * d
    k = 0
    while k < rec_steps.shape[0] and rec_steps[k] <= step0:
        k += 1
    for t in range(step0, step0 + n_steps):
        forward(X, W1, W2, A, Hr, F)
        top = loss_gradient(F, labels, G, u)
        if not top < ceiling:
            return STATUS_DIVERGED, t
        np.dot(G.T, Hr, gW2)
        np.dot(G, W2, Hr)  # Hr now holds dL/dHr
        for n in range(N):
            for j in range(H):
                if not A[n, j] > 0.0:
                    Hr[n, j] = 0.0
        np.dot(Hr.T, X, gW1)
        for i in range(H):
            for j in range(d):
                V1[i, j] = beta * V1[i, j] - lr * gW1[i, j]
                W1[i, j] += V1[i, j]
        for i in range(C):
            for j in range(H):
                V2[i, j] = beta * V2[i, j] - lr * gW2[i, j]
                W2[i, j] += V2[i, j]
        if k < rec_steps.shape[0] and rec_steps[k] == t + 1:
            row = rec_theta[k]
            for i in range(H):
                for j in range(d):
                    row[i * d + j] = W1[i, j]
            for i in range(C):
                for j in range(H):
                    row[p1 + i * H + j] = W2[i, j]
            k += 1
    return STATUS_OK, step0 + n_steps


@njit(nogil=True, cache=True)
def softmax_net_evaluate(X, labels, W1, W2):
    """``(log L, errors, min_margin)`` of the network on ``(X, labels)``: the log of the mean
    cross-entropy (finite however small ``L`` is), the number of samples whose true class does
    not have the strictly largest output, and ``min_n min_{k != y_n} (F_{y_n} - F_k)(x_n)``."""
    N = X.shape[0]
    H = W1.shape[0]
    C = W2.shape[0]
    A = np.empty((N, H))
    Hr = np.empty((N, H))
    F = np.empty((N, C))
    u = np.empty(C)
    forward(X, W1, W2, A, Hr, F)
    ls = np.empty(N)
    errors = 0
    margin = np.inf
    for n in range(N):
        r = softmax_terms(F, labels, n, u)
        ls[n] = log_softplus(r)
        top = -np.inf
        for k in range(C):
            if u[k] > top:
                top = u[k]
        if not top < 0.0:
            errors += 1
        if -top < margin:
            margin = -top
    mx = -np.inf
    for n in range(N):
        if ls[n] > mx:
            mx = ls[n]
    if not mx < np.inf:
        return mx, errors, margin
    acc = 0.0
    for n in range(N):
        acc += math.exp(ls[n] - mx)
    return mx + math.log(acc) - math.log(N), errors, margin
