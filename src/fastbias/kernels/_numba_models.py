"""numba GD kernels for parameterized predictors ``beta = P(theta)`` (deep linear models).

Every kernel has the argument order of ``_reference.gd_model`` minus the two callables, plus
model-specific trailing arguments, and runs ``n_steps`` steps in one nopython, nogil call:

    kernel(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
           scale, rec_scale, lo, *extra)

The loop is :func:`gd_loop`, shared by the kernels of this module, ``_numba_tensor`` and
``_numba_lowrank``: margins, log-domain weights and ``G = Z^T q`` (:func:`predictor_step_scaled`),
the step-size rule and update (:func:`take_step`) and the records (:func:`record_scaled`). A
model's kernel supplies its predictor, its vector-Jacobian product ``J_P(theta)^T G`` and their
scratch arrays (``gd_diagonal``: :func:`diagonal_beta`, :func:`diagonal_grad`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba import _FAST, compensated_add, loss_weights_inplace, min_value


@njit(nogil=True, cache=True, fastmath=_FAST)
def margins_into(ZT, beta, m):
    """``m = Z beta`` (``ZT`` is ``Z^T``, shape (d, N))."""
    d, N = ZT.shape
    for i in range(N):
        m[i] = 0.0
    for j in range(d):
        bj = beta[j]
        for i in range(N):
            m[i] += ZT[j, i] * bj


@njit(nogil=True, cache=True, fastmath=_FAST)
def gradient_into(ZT, q, G):
    """``G = Z^T q``."""
    d, N = ZT.shape
    for j in range(d):
        acc = 0.0
        for i in range(N):
            acc += q[i] * ZT[j, i]
        G[j] = acc


@njit(nogil=True, cache=True, fastmath=_FAST)
def weights_inplace(m, N, targets, loss, rule, floor, ubuf, ubits, a):
    """Overwrite the margins (or predictions, squared loss) ``m[:N]`` by the weights ``q``:
    returns ``(ok, log_scale, lsum)``; ``ok`` is False when the divergence test fails."""
    if loss == 2:
        lsum = 0.0
        for i in range(N):
            m[i] = targets[i] - m[i]
            lsum += m[i] * m[i]
        lsum *= 0.5
        if not lsum < -floor:
            return False, 0.0, lsum
        return True, 0.0, lsum
    s = min_value(m, N)
    if not s > floor:
        return False, 0.0, 0.0
    log_scale, lsum = loss_weights_inplace(m, N, s, loss, ubuf, ubits, a, rule == 2)
    return True, log_scale, lsum


@njit(nogil=True, cache=True, fastmath=_FAST)
def predictor_step(ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G):
    """Margins ``m = Z beta``, weights ``q`` (in ``m``) and ``G = Z^T q``.

    Returns ``(ok, log_scale, lsum)`` where ``lsum`` is ``L / exp(log_scale)`` (the loss-scaled
    rule's denominator) and ``ok`` is False when the divergence test fails.
    """
    margins_into(ZT, beta, m)
    ok, log_scale, lsum = weights_inplace(
        m, ZT.shape[1], targets, loss, rule, floor, ubuf, ubits, a
    )
    if ok:
        gradient_into(ZT, m, G)
    return ok, log_scale, lsum


@njit(nogil=True, cache=True, fastmath=_FAST)
def apply_step(theta, g, lr, rule, log_scale, lsum):
    """``theta += eta_t g`` for the step rule; returns False if ``g`` is not finite."""
    n2 = 0.0
    for i in range(theta.shape[0]):
        n2 += g[i] * g[i]
    if not n2 < np.inf:
        return False
    if rule == 0:
        c = lr * math.exp(log_scale)
    elif rule == 1:
        c = lr / math.sqrt(n2) if n2 > 0 else 0.0
    else:
        c = lr / lsum
    for i in range(theta.shape[0]):
        theta[i] += c * g[i]
    return True


@njit(nogil=True, cache=True)
def record(theta, t, k, rec_steps, rec_theta):
    """Copy ``theta`` into ``rec_theta[k]`` if step ``t`` is the next checkpoint; new ``k``."""
    if k < rec_steps.shape[0] and rec_steps[k] == t:
        for i in range(theta.shape[0]):
            rec_theta[k, i] = theta[i]
        return k + 1
    return k


# ---- parameters carried as theta = 2**e * theta_s (issue: norms of 1e100, margins of 1e300) ----
# A homogeneous model of degree L has margins 2**(e L) m(theta_s) and gradients
# 2**(e (L-1)) g(theta_s). Kernels keep ||theta_s|| <= 2**RESCALE_BITS by exact power-of-two
# rescaling, so the run is bit for bit the unscaled run for as long as that one does not
# overflow, and goes on where it would: margins beyond ~700 give exp-loss and logistic weights
# that agree to double precision, and are computed from shifted margins 2**(e L) (m - min m),
# which may be infinite (weight 0); the loss scale exp(-min m) may underflow to 0.
RESCALE_BITS = 16
_HUGE_MARGIN = 700.0


@njit(nogil=True, cache=True, fastmath=_FAST)
def predictor_step_scaled(ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G, mexp):
    """:func:`predictor_step` for ``beta = 2**mexp * beta_s`` (``beta`` holds ``beta_s``)."""
    if mexp == 0:
        return predictor_step(ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G)
    N = ZT.shape[1]
    margins_into(ZT, beta, m)
    s = min_value(m, N)
    if loss != 2 and s > 0.0 and math.ldexp(s, mexp) > _HUGE_MARGIN:
        for i in range(N):
            m[i] = math.ldexp(m[i] - s, mexp)
        _, lsum = loss_weights_inplace(m, N, 0.0, 0, ubuf, ubits, a, rule == 2)
        log_scale = -math.ldexp(s, mexp)
        ok = True
    else:
        for i in range(N):
            m[i] = math.ldexp(m[i], mexp)
        ok, log_scale, lsum = weights_inplace(m, N, targets, loss, rule, floor, ubuf, ubits, a)
    if ok:
        gradient_into(ZT, m, G)
    return ok, log_scale, lsum


@njit(nogil=True, cache=True)
def step_coefficient(lr, rule, log_scale, lsum, n2, e, depth):
    """``eta_t`` times the gradient scale, for the scaled parameters ``theta_s`` (exponent e).

    The update ``theta += c g(theta)`` becomes ``theta_s += c 2**(e (L-2)) g(theta_s)``; the
    normalized rule's ``c = eta / ||g(theta)||`` becomes ``2**-e eta / ||g(theta_s)||``.
    """
    e = int(e)  # math.ldexp wants a Python int when run without JIT
    if rule == 0:
        c = lr * math.exp(log_scale)
    elif rule == 1:
        return math.ldexp(lr / math.sqrt(n2), -e) if n2 > 0 else 0.0
    else:
        c = lr / lsum
    return math.ldexp(c, e * (depth - 2)) if e != 0 else c


@njit(nogil=True, cache=True, fastmath=_FAST)
def apply_step_scaled(theta, g, lr, rule, log_scale, lsum, scale, depth):
    """:func:`apply_step` on ``theta_s`` with exponent ``scale[0]``, then exact rescaling.

    Returns False if ``g`` is not finite.
    """
    n2 = 0.0
    for i in range(theta.shape[0]):
        n2 += g[i] * g[i]
    if not n2 < np.inf:
        return False
    c = step_coefficient(lr, rule, log_scale, lsum, n2, scale[0], depth)
    t2 = 0.0
    for i in range(theta.shape[0]):
        theta[i] += c * g[i]
        t2 += theta[i] * theta[i]
    rescale(theta, t2, scale)
    return True


@njit(nogil=True, cache=True)
def rescale(theta, t2, scale):
    """Keep ``2**-RESCALE_BITS <= ||theta_s|| <= 2**RESCALE_BITS`` (the lower bound only once
    scaled), multiplying by powers of two (exact)."""
    hi = 2.0 ** (2 * RESCALE_BITS)
    if not t2 < np.inf:
        return  # inf or NaN: the divergence test of the next step reports it
    while t2 > hi or (scale[0] > 0 and t2 < 1.0 / hi):
        shift = -RESCALE_BITS if t2 > hi else RESCALE_BITS
        f = 2.0**shift
        for i in range(theta.shape[0]):
            theta[i] *= f
        scale[0] -= shift
        t2 *= f * f


@njit(nogil=True, cache=True, fastmath=_FAST)
def squared_norm(v):
    acc = 0.0
    for i in range(v.shape[0]):
        acc += v[i] * v[i]
    return acc


@njit(nogil=True, cache=True)
def apply_step_compensated(theta, lo, g, lr, rule, log_scale, lsum, scale, depth):
    """:func:`apply_step_scaled` with the update summed in compensated arithmetic: ``lo``
    carries what rounding ``theta`` lost (``precision="compensated"``). No fastmath here or in
    the kernels that call it: LLVM would fold the two-sum away."""
    n2 = squared_norm(g)
    if not n2 < np.inf:
        return False
    c = step_coefficient(lr, rule, log_scale, lsum, n2, scale[0], depth)
    compensated_add(theta, lo, c, g, theta.shape[0])
    t2 = squared_norm(theta)
    if not t2 < np.inf:
        return True  # the divergence test of the next step reports it
    before = scale[0]
    rescale(theta, t2, scale)
    if scale[0] != before:
        f = 2.0 ** (before - scale[0])
        for i in range(lo.shape[0]):
            lo[i] *= f
    return True


@njit(nogil=True, cache=True)
def take_step(theta, lo, g, lr, rule, log_scale, lsum, scale, depth):
    """The update of a step: compensated when ``lo`` is not empty."""
    if lo.shape[0] == 0:
        return apply_step_scaled(theta, g, lr, rule, log_scale, lsum, scale, depth)
    return apply_step_compensated(theta, lo, g, lr, rule, log_scale, lsum, scale, depth)


@njit(nogil=True, cache=True)
def record_scaled(theta, t, k, rec_steps, rec_theta, scale, rec_scale):
    """:func:`record` plus the exponent of the recorded ``theta_s``."""
    if k < rec_steps.shape[0] and rec_steps[k] == t:
        rec_scale[k] = scale[0]
    return record(theta, t, k, rec_steps, rec_theta)


@njit(inline="always")
def gd_loop(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
            scale, rec_scale, lo, depth, predictor, vjp, model):  # fmt: skip
    """The GD loop of a kernel ``beta = P(theta)``: the kernel's arguments, then the model's
    homogeneity degree ``depth``, its predictor ``predictor(theta, model, beta)`` (writes
    ``beta``), its VJP ``vjp(theta, model, G, g)`` (writes ``g = J_P(theta)^T G``) and
    ``model``, a tuple of its data and scratch arrays, passed to both.

    Inlined into each kernel (numba ``inline="always"``), where ``predictor`` and ``vjp`` are
    global njit functions: each kernel is compiled and cached as if the loop were written in
    it (jitted functions passed as arguments to a compiled function would make it uncacheable).
    The models' ``predictor`` and ``vjp`` (:func:`diagonal_beta`, ...) are inlined too, so a
    kernel compiles to the loop written out by hand.
    No fastmath here: the kernels compile this loop with their own flags (none), which the
    compensated update needs; the model's functions keep theirs.
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
        predictor(theta, model, beta)
        ok, log_scale, lsum = predictor_step_scaled(
            ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G, scale[0] * depth
        )
        if not ok:
            return STATUS_DIVERGED, t
        vjp(theta, model, G, g)
        if not take_step(theta, lo, g, lr, rule, log_scale, lsum, scale, depth):
            return STATUS_DIVERGED, t
        k = record_scaled(theta, t + 1, k, rec_steps, rec_theta, scale, rec_scale)
    return STATUS_OK, step0 + n_steps


@njit(nogil=True, cache=True, fastmath=_FAST)
def diagonal_predictor(theta, depth, beta, prefix):
    """``beta = prod_l w_l``; ``prefix[l] = w_1 * .. * w_l`` rows (``(depth, d)`` scratch)."""
    d = beta.shape[0]
    for j in range(d):
        prefix[0, j] = theta[j]
    for layer in range(1, depth):
        off = layer * d
        for j in range(d):
            prefix[layer, j] = prefix[layer - 1, j] * theta[off + j]
    for j in range(d):
        beta[j] = prefix[depth - 1, j]


@njit(nogil=True, cache=True, fastmath=_FAST)
def diagonal_vjp(theta, G, depth, prefix, g):
    """``g_l = G * prod_{k<l} w_k * prod_{k>l} w_k`` from prefix products and a running suffix."""
    d = G.shape[0]
    for j in range(d):
        suffix = G[j]
        for layer in range(depth - 1, -1, -1):
            left = prefix[layer - 1, j] if layer > 0 else 1.0
            g[layer * d + j] = left * suffix
            suffix *= theta[layer * d + j]


@njit(inline="always")
def diagonal_beta(theta, model, beta):
    """:func:`diagonal_predictor` for :func:`gd_loop`; ``model = (depth, prefix)``."""
    depth, prefix = model
    diagonal_predictor(theta, depth, beta, prefix)


@njit(inline="always")
def diagonal_grad(theta, model, G, g):
    """:func:`diagonal_vjp` for :func:`gd_loop`."""
    depth, prefix = model
    diagonal_vjp(theta, G, depth, prefix, g)


@njit(nogil=True, cache=True)
def gd_diagonal(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
                scale, rec_scale, lo, depth):  # fmt: skip
    """GD on a depth-L diagonal network ``beta = w_1 * .. * w_L`` (Yun eq. 11), with
    ``theta = 2**scale[0] * theta_s`` (``rec_scale``: the exponents of the recorded rows) and,
    when ``lo`` is not empty, compensated updates (:func:`apply_step_compensated`)."""
    model = (depth, np.empty((depth, Z.shape[1])))
    return gd_loop(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, depth, diagonal_beta, diagonal_grad, model,
    )  # fmt: skip


@njit(nogil=True, cache=True, fastmath=_FAST)
def fc_predictor(theta, dims, offsets, right, beta):
    """``beta = W_1 (W_2 (.. w_L))``; ``right[l]`` keeps ``W_{l+1} .. w_L`` for the VJP.

    Layer l (0-based) is ``W`` of shape ``(dims[l], dims[l+1])`` at ``theta[offsets[l]:]``
    (row-major); the last layer is ``w_L`` of length ``dims[L-1]``. Row l of ``right`` holds
    the vector multiplied by ``W_l`` (length ``dims[l+1]``); row L-1 is ``w_L``. Layers are
    read through reshaped views so the inner loops index with loop variables only (no
    wraparound checks), which lets LLVM vectorize them.
    """
    L = dims.shape[0]
    last = offsets[L - 1]
    wl = theta[last : last + dims[L - 1]]
    top = right[L - 1]
    for i in range(dims[L - 1]):
        top[i] = wl[i]
    for layer in range(L - 2, -1, -1):
        rows = dims[layer]
        cols = dims[layer + 1]
        off = offsets[layer]
        W = theta[off : off + rows * cols].reshape((rows, cols))
        src = right[layer + 1]
        dst = right[layer]
        for r in range(rows):
            acc = 0.0
            for c in range(cols):
                acc += W[r, c] * src[c]
            dst[r] = acc
    first = right[0]
    for j in range(dims[0]):
        beta[j] = first[j]


@njit(nogil=True, cache=True, fastmath=_FAST)
def fc_vjp(theta, G, dims, offsets, right, a, b, g):
    """``g[W_l] = outer(a_l, right[l+1])`` with ``a_1 = G`` and ``a_{l+1} = W_l^T a_l``;
    ``g[w_L] = a_L``. ``a`` and ``b`` are scratch vectors of the largest width (swapped per
    layer, so reads and writes never alias)."""
    L = dims.shape[0]
    for j in range(dims[0]):
        a[j] = G[j]
    for layer in range(L - 1):
        rows = dims[layer]
        cols = dims[layer + 1]
        off = offsets[layer]
        W = theta[off : off + rows * cols].reshape((rows, cols))
        gW = g[off : off + rows * cols].reshape((rows, cols))
        rgt = right[layer + 1]
        for r in range(rows):
            ar = a[r]
            for c in range(cols):
                gW[r, c] = ar * rgt[c]
        for c in range(cols):
            b[c] = 0.0
        for r in range(rows):
            ar = a[r]
            for c in range(cols):
                b[c] += W[r, c] * ar
        a, b = b, a
    last = offsets[L - 1]
    for i in range(dims[L - 1]):
        g[last + i] = a[i]


@njit(inline="always")
def fc_beta(theta, model, beta):
    """:func:`fc_predictor` for :func:`gd_loop`; ``model = (dims, offsets, right, va, vb)``."""
    dims, offsets, right, _, _ = model
    fc_predictor(theta, dims, offsets, right, beta)


@njit(inline="always")
def fc_grad(theta, model, G, g):
    """:func:`fc_vjp` for :func:`gd_loop`."""
    dims, offsets, right, va, vb = model
    fc_vjp(theta, G, dims, offsets, right, va, vb, g)


@njit(nogil=True, cache=True)
def gd_fully_connected(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
                       floor, scale, rec_scale, lo, dims, offsets):  # fmt: skip
    """GD on a fully connected linear network ``beta = W_1 .. W_{L-1} w_L`` (Gunasekar eq. 1),
    with ``theta = 2**scale[0] * theta_s`` as in :func:`gd_diagonal`."""
    width = dims.max()
    model = (dims, offsets, np.zeros((dims.shape[0], width)), np.zeros(width), np.zeros(width))
    return gd_loop(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, dims.shape[0], fc_beta, fc_grad, model,
    )  # fmt: skip
