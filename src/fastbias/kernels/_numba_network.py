"""numba GD kernel for networks of the class N (Vardi et al. 2022, Section 2), linear or ReLU.

``gd_network`` has the argument order of the other model kernels (``_reference.gd_model``
without the callables) with the network's structure arrays appended:

    gd_network(X, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
               scale, rec_scale, lo, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par,
               relu, c0)

Unlike the linear-predictor kernels it takes ``X`` and the labels separately (a ReLU network
has ``Phi(theta; y x) != y Phi(theta; x)``): ``targets`` are the labels ``y_n = +-1`` for the
margin losses (margins ``y_n Phi(theta; x_n)``) and real targets for the squared loss.

Structure (built by ``Network._kernel_args``; trusted): ``dims = [d_0, ..., d_m]``; layer l's
weight matrix ``W^(l)`` (``d_l x d_{l-1}``, row-major) occupies ``[w_off[l], w_off[l+1])`` of
``gidx``, which holds the flat index into ``theta`` of every position (-1: structural zero).
Dense layers (``dense[l]``) are rebuilt from ``theta`` every step and multiplied with BLAS
(``np.dot`` with ``out=``); sparse layers run over their nonzeros ``nz_*[nz_off[l]:nz_off[l+1]]``
(row, column, flat parameter index). Activations are stored transposed, ``(d_l, N)``, so every
inner loop runs over contiguous samples. ``c0`` is ReLU's derivative at 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba import _FAST, loss_weights_inplace, min_value
from ._numba_models import _HUGE_MARGIN, record_scaled, take_step


@njit(nogil=True, cache=True, fastmath=_FAST)
def build_weights(theta, gidx, wbuf):
    """``wbuf[p] = theta[gidx[p]]`` (0 at structural zeros)."""
    for p in range(gidx.shape[0]):
        k = gidx[p]
        wbuf[p] = theta[k] if k >= 0 else 0.0


@njit(nogil=True, cache=True, fastmath=_FAST)
def network_forward(
    theta, XT, dims, w_off, dense, nz_off, nz_row, nz_col, nz_par, relu, wbuf, abuf, hbuf, out
):
    """Forward pass for all samples: hidden pre-activations ``abuf`` and activations ``hbuf``
    (layer after layer, each ``(d_l, N)``), outputs ``out`` (N,). ``wbuf`` must hold the
    current weights (:func:`build_weights`)."""
    m = dims.shape[0] - 1
    N = XT.shape[1]
    Hprev = XT
    pos = 0
    for layer in range(m):
        rows = dims[layer + 1]
        cols = dims[layer]
        if layer == m - 1:
            A = out[:N].reshape((1, N))
        else:
            A = abuf[pos : pos + rows * N].reshape((rows, N))
        if dense[layer]:
            W = wbuf[w_off[layer] : w_off[layer] + rows * cols].reshape((rows, cols))
            np.dot(W, Hprev, A)
        else:
            for i in range(rows):
                for n in range(N):
                    A[i, n] = 0.0
            for z in range(nz_off[layer], nz_off[layer + 1]):
                w = theta[nz_par[z]]
                i = nz_row[z]
                j = nz_col[z]
                for n in range(N):
                    A[i, n] += w * Hprev[j, n]
        if layer == m - 1:
            break
        H = hbuf[pos : pos + rows * N].reshape((rows, N))
        if relu:
            for i in range(rows):
                for n in range(N):
                    a = A[i, n]
                    H[i, n] = a if a > 0.0 else 0.0
        else:
            for i in range(rows):
                for n in range(N):
                    H[i, n] = A[i, n]
        Hprev = H
        pos += rows * N


@njit(nogil=True, cache=True, fastmath=_FAST)
def network_backward(
    theta, XT, dout, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu, c0,
    wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b, g,
):  # fmt: skip
    """``g = sum_n dout[n] grad_theta Phi(theta; x_n)`` by backpropagation through the stored
    forward pass (``g`` is overwritten)."""
    m = dims.shape[0] - 1
    N = XT.shape[1]
    for k in range(g.shape[0]):
        g[k] = 0.0
    hoff = np.zeros(m, dtype=np.int64)
    for layer in range(1, m):
        hoff[layer] = hoff[layer - 1] + dims[layer] * N
    Dcur = dbuf_a[:N].reshape((1, N))
    for n in range(N):
        Dcur[0, n] = dout[n]
    use_a = True
    for layer in range(m - 1, -1, -1):
        rows = dims[layer + 1]
        cols = dims[layer]
        if layer == 0:
            Hprev = XT
        else:
            Hprev = hbuf[hoff[layer - 1] : hoff[layer - 1] + cols * N].reshape((cols, N))
        if dense[layer]:
            size = rows * cols
            GW = gwbuf[:size].reshape((rows, cols))
            np.dot(Dcur, Hprev.T, GW)
            base = w_off[layer]
            for p in range(size):
                k = gidx[base + p]
                if k >= 0:
                    g[k] += gwbuf[p]
        else:
            for z in range(nz_off[layer], nz_off[layer + 1]):
                i = nz_row[z]
                j = nz_col[z]
                acc = 0.0
                for n in range(N):
                    acc += Dcur[i, n] * Hprev[j, n]
                g[nz_par[z]] += acc
        if layer == 0:
            break
        if use_a:
            Dprev = dbuf_b[: cols * N].reshape((cols, N))
        else:
            Dprev = dbuf_a[: cols * N].reshape((cols, N))
        if dense[layer]:
            W = wbuf[w_off[layer] : w_off[layer] + rows * cols].reshape((rows, cols))
            np.dot(W.T, Dcur, Dprev)
        else:
            for j in range(cols):
                for n in range(N):
                    Dprev[j, n] = 0.0
            for z in range(nz_off[layer], nz_off[layer + 1]):
                w = theta[nz_par[z]]
                i = nz_row[z]
                j = nz_col[z]
                for n in range(N):
                    Dprev[j, n] += w * Dcur[i, n]
        if relu:
            A = abuf[hoff[layer - 1] : hoff[layer - 1] + cols * N].reshape((cols, N))
            for j in range(cols):
                for n in range(N):
                    a = A[j, n]
                    Dprev[j, n] *= 1.0 if a > 0.0 else (c0 if a == 0.0 else 0.0)
        Dcur = Dprev
        use_a = not use_a


@njit(nogil=True, cache=True)
def _buffers(dims, w_off, N):
    m = dims.shape[0] - 1
    hidden = 0
    widest = 1
    for layer in range(1, m):
        hidden += dims[layer] * N
        widest = max(widest, dims[layer])
    biggest = 1
    for layer in range(m):
        biggest = max(biggest, dims[layer] * dims[layer + 1])
    wbuf = np.empty(max(w_off[m], 1))
    gwbuf = np.empty(biggest)
    abuf = np.empty(max(hidden, 1))
    hbuf = np.empty(max(hidden, 1))
    dbuf_a = np.empty(widest * N)
    dbuf_b = np.empty(widest * N)
    return wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b


@njit(nogil=True, cache=True)
def network_outputs(X, theta, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu):
    """``Phi(theta; x_n)`` for every row of X (the kernel's forward pass, for tests)."""
    N = X.shape[0]
    XT = np.ascontiguousarray(X.T)
    wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b = _buffers(dims, w_off, N)
    out = np.empty(N)
    build_weights(theta, gidx, wbuf)
    network_forward(
        theta, XT, dims, w_off, dense, nz_off, nz_row, nz_col, nz_par, relu, wbuf, abuf, hbuf, out
    )
    return out


@njit(nogil=True, cache=True)
def network_vjp(X, theta, dout, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu, c0):
    """``sum_n dout[n] grad Phi(theta; x_n)`` (the kernel's backward pass, for tests)."""
    N = X.shape[0]
    XT = np.ascontiguousarray(X.T)
    wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b = _buffers(dims, w_off, N)
    out = np.empty(N)
    g = np.empty(theta.shape[0])
    build_weights(theta, gidx, wbuf)
    network_forward(
        theta, XT, dims, w_off, dense, nz_off, nz_row, nz_col, nz_par, relu, wbuf, abuf, hbuf, out
    )
    network_backward(
        theta, XT, dout, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu, c0,
        wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b, g,
    )  # fmt: skip
    return g


@njit(nogil=True, cache=True, fastmath=_FAST)
def loss_step(out, targets, loss, rule, floor, m, dout, ubuf, ubits, a, mexp):
    """Loss weights from the outputs ``out = Phi(theta_s; x_n)`` of the scaled parameters
    (``theta = 2**e theta_s``, ``mexp = e * depth``): ``dout = q * y`` (squared loss:
    ``y - Phi``), as ``_numba_models.predictor_step_scaled`` does for ``Z beta``.

    Returns ``(ok, log_scale, lsum)``; ``ok`` is False when the divergence test fails.
    """
    N = out.shape[0]
    mexp = int(mexp)  # math.ldexp needs a Python int when run without JIT
    if loss == 2:
        lsum = 0.0
        for n in range(N):
            r = targets[n] - (math.ldexp(out[n], mexp) if mexp != 0 else out[n])
            dout[n] = r
            lsum += r * r
        lsum *= 0.5
        if not lsum < -floor:
            return False, 0.0, lsum
        return True, 0.0, lsum
    for n in range(N):
        m[n] = targets[n] * out[n]
    s = min_value(m, N)
    if mexp != 0 and s > 0.0 and math.ldexp(s, mexp) > _HUGE_MARGIN:
        # margins beyond ~700: both losses have the weights of the exponential loss
        for n in range(N):
            m[n] = math.ldexp(m[n] - s, mexp)
        _, lsum = loss_weights_inplace(m, N, 0.0, 0, ubuf, ubits, a, rule == 2)
        log_scale = -math.ldexp(s, mexp)
    else:
        if mexp != 0:
            for n in range(N):
                m[n] = math.ldexp(m[n], mexp)
            s = min_value(m, N)
        if not s > floor:
            return False, 0.0, 0.0
        log_scale, lsum = loss_weights_inplace(m, N, s, loss, ubuf, ubits, a, rule == 2)
    for n in range(N):
        dout[n] = m[n] * targets[n]
    return True, log_scale, lsum


@njit(nogil=True, cache=True)
def gd_network(
    X, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
    rec_scale, lo, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu, c0,
):  # fmt: skip
    """GD on ``sum_n l(y_n Phi(theta; x_n))`` (or the squared loss) for a network in N.

    Same step as ``_reference.gd_model``: ``theta += eta_t exp(log_scale) sum_n q_n y_n
    grad Phi(theta; x_n)`` with the log-domain weights ``q`` of ``loss_weights`` (squared:
    ``q = y - Phi``, ``log_scale = 0``), the step rules 0 fixed / 1 normalized / 2 loss-scaled,
    the divergence test on ``floor`` and the checkpoints ``rec_steps`` -> ``rec_theta``.
    ``theta = 2**scale[0] * theta_s`` with exact power-of-two rescaling, as in
    ``_numba_models.gd_diagonal`` (``rec_scale``: the exponents of the recorded rows); ``lo``
    non-empty: compensated updates (``precision="compensated"``). No fastmath in this loop
    (the helpers keep theirs), so the compensated two-sum survives.
    """
    N = X.shape[0]
    depth = dims.shape[0] - 1
    XT = np.ascontiguousarray(X.T)
    wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b = _buffers(dims, w_off, N)
    out = np.empty(N)
    m = np.empty(N)
    dout = np.empty(N)
    ubuf = np.empty(N)
    ubits = ubuf.view(np.int64)
    a = np.empty(N)
    g = np.empty(theta.shape[0])
    k = 0
    for t in range(step0, step0 + n_steps):
        build_weights(theta, gidx, wbuf)
        network_forward(
            theta, XT, dims, w_off, dense, nz_off, nz_row, nz_col, nz_par, relu,
            wbuf, abuf, hbuf, out,
        )  # fmt: skip
        ok, log_scale, lsum = loss_step(
            out, targets, loss, rule, floor, m, dout, ubuf, ubits, a, scale[0] * depth
        )
        if not ok:
            return STATUS_DIVERGED, t
        network_backward(
            theta, XT, dout, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu, c0,
            wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b, g,
        )  # fmt: skip
        if not take_step(theta, lo, g, lr, rule, log_scale, lsum, scale, depth):
            return STATUS_DIVERGED, t
        k = record_scaled(theta, t + 1, k, rec_steps, rec_theta, scale, rec_scale)
    return STATUS_OK, step0 + n_steps
