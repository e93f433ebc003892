"""numba kernels: whole GD runs in one nopython, nogil call.

Each kernel has the same arguments, in the same order, as its NumPy reference in
``_reference.py``; the tests compare them. Inputs are trusted: C-contiguous float64 arrays of
consistent shapes, validated once by the public API.

The exponentials of the log-domain loss weights all have non-positive arguments, so they go
through :func:`exp_nonpos`, a branch-free exp (Cody-Waite reduction, degree-13 Taylor
polynomial, exponent bits assembled with integer shifts) that LLVM vectorizes; libm's scalar
``exp`` does not vectorize and would dominate the step on small problems.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK

# Reassociation lets LLVM vectorize the reductions; NaN/inf semantics are kept so the
# divergence test sees non-finite margins.
_FAST = {"reassoc", "contract", "nsz", "arcp"}

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_EXP_BIAS = 4503599627370496.0 + 1023.0  # 2**52 + 1023: low mantissa bits hold n + 1023


@njit(nogil=True, cache=True, fastmath={"contract"})
def exp_nonpos(x, n, ubuf, ubits):
    """``x[:n] <- exp(max(x[:n], -708))`` in place, for ``x <= 0``; relative error < 3e-16.

    ``ubuf`` is float64 scratch of length >= n and ``ubits`` its int64 view.
    Compiled without reassociation: the rounding trick ``(a + 2**52*1.5) - 2**52*1.5`` must
    not be simplified away.
    """
    for i in range(n):
        xi = max(x[i], -708.0)
        nf = (xi * _LOG2E + _ROUND) - _ROUND
        r = (xi - nf * _LN2_HI) - nf * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        x[i] = p
        ubuf[i] = nf + _EXP_BIAS
    for i in range(n):
        ubits[i] = ubits[i] << 52
    for i in range(n):
        x[i] = x[i] * ubuf[i]


@njit(nogil=True, cache=True, fastmath=_FAST)
def min_value(m, n):
    """``min(m[:n])`` with four independent lanes, so LLVM vectorizes it.

    NaN entries other than ``m[0]`` are skipped; callers catch them through the gradient norm.
    """
    s0 = m[0]
    s1 = m[0]
    s2 = m[0]
    s3 = m[0]
    n4 = n - n % 4
    for i in range(0, n4, 4):
        s0 = m[i] if m[i] < s0 else s0
        s1 = m[i + 1] if m[i + 1] < s1 else s1
        s2 = m[i + 2] if m[i + 2] < s2 else s2
        s3 = m[i + 3] if m[i + 3] < s3 else s3
    for i in range(n4, n):
        s0 = m[i] if m[i] < s0 else s0
    return min(min(s0, s1), min(s2, s3))


@njit(nogil=True, cache=True, fastmath=_FAST)
def loss_weights_inplace(m, n, s, loss, ubuf, ubits, a, need_sum):
    """Overwrite margins ``m[:n]`` by the log-domain weights ``q`` of ``_reference.loss_weights``.

    ``s = min m``; ``a`` is float64 scratch of length >= n. Returns ``(log_scale, lsum)`` where
    ``lsum = L / exp(log_scale)`` (``_reference.scaled_loss_sum``) when ``need_sum`` is true
    (the loss-scaled rule), else 0. It is computed from the margins before they are
    overwritten, so no precision is lost where ``q`` is close to 1.
    """
    lsum = 0.0
    if loss == 1 and s < 0.0:
        # q = 1 / (1 + exp(m)) from a = exp(-|m|), which never overflows;
        # l(m) = max(-m, 0) + log1p(exp(-|m|)).
        for i in range(n):
            a[i] = -abs(m[i])
        exp_nonpos(a, n, ubuf, ubits)
        if need_sum:
            for i in range(n):
                lsum += max(-m[i], 0.0) + math.log1p(a[i])
        for i in range(n):
            q = 1.0 / (1.0 + a[i])
            m[i] = q if m[i] <= 0.0 else a[i] * q
        return 0.0, lsum
    for i in range(n):
        m[i] = s - m[i]
    exp_nonpos(m, n, ubuf, ubits)
    if loss == 0:
        if need_sum:
            for i in range(n):
                lsum += m[i]
        return -s, lsum
    c = math.exp(-s)
    if need_sum:
        # L / exp(-s) = sum_n E_n log1p(c E_n) / (c E_n), with E_n = exp(s - m_n) <= 1.
        for i in range(n):
            x = c * m[i]
            lsum += m[i] * (math.log1p(x) / x if x > 1e-300 else 1.0)
    for i in range(n):
        m[i] = m[i] / (1.0 + c * m[i])
    return -s, lsum


@njit(nogil=True, cache=True, fastmath=_FAST)
def gd_linear(Z, w, lr, loss, rule, step0, n_steps, rec_steps, rec_w, s_floor):
    """GD on a linear predictor (Soudry et al. eq. 2.2); see ``_reference.gd_linear``.

    The step is written out here rather than through :func:`linear_gradient`: the fallback
    kernel is ~14% faster this way (measured 134 vs 152 ns/step on the Figure 3.1 data).

    Trusts its inputs: Z (N, d) and w (d,) float64 C-contiguous, rec_w (K, d) preallocated.
    """
    N, d = Z.shape
    ZT = np.ascontiguousarray(Z.T)
    m = np.empty(N)
    ubuf = np.empty(N)
    ubits = ubuf.view(np.int64)
    a = np.empty(N)
    G = np.empty(d)
    k = 0
    K = rec_steps.shape[0]
    for t in range(step0, step0 + n_steps):
        for i in range(N):
            m[i] = 0.0
        for j in range(d):
            wj = w[j]
            for i in range(N):
                m[i] += ZT[j, i] * wj
        s = min_value(m, N)
        if not s > s_floor:
            return STATUS_DIVERGED, t
        log_scale, lsum = loss_weights_inplace(m, N, s, loss, ubuf, ubits, a, rule == 2)
        gnorm2 = 0.0
        for j in range(d):
            acc = 0.0
            for i in range(N):
                acc += m[i] * ZT[j, i]
            G[j] = acc
            gnorm2 += acc * acc
        if not gnorm2 < np.inf:  # NaN or inf margins
            return STATUS_DIVERGED, t
        if rule == 0:
            c = lr * math.exp(log_scale)
        elif rule == 1:
            c = lr / math.sqrt(gnorm2)
        else:
            c = lr / lsum
        for j in range(d):
            w[j] += c * G[j]
        if k < K and rec_steps[k] == t + 1:
            for j in range(d):
                rec_w[k, j] = w[j]
            k += 1
    return STATUS_OK, step0 + n_steps


@njit(nogil=True, cache=True)
def compensated_add(hi, lo, c, g, n):
    """``(hi + lo) += c * g`` elementwise with Kahan-Babuska (Neumaier) compensation.

    ``hi`` is the float64 iterate the next step reads; ``lo`` carries the low-order bits the
    rounding of ``hi`` lost, so an update far below ``ulp(hi)`` (GD late in a long run adds
    ``~1/t`` to ``w ~ log t``) is not rounded away. Compiled without fastmath: the two-sum must
    not be reassociated.
    """
    for j in range(n):
        u = c * g[j] + lo[j]
        s = hi[j] + u
        if abs(hi[j]) >= abs(u):
            lo[j] = (hi[j] - s) + u
        else:
            lo[j] = (u - s) + hi[j]
        hi[j] = s


@njit(nogil=True, cache=True, fastmath=_FAST)
def linear_gradient(ZT, w, m, ubuf, ubits, a, G, loss, rule, s_floor):
    """Margins, log-domain weights and ``G = Z^T q`` of one linear GD step (as in
    :func:`gd_linear`); returns ``(ok, log_scale, lsum, ||G||^2)``."""
    d, N = ZT.shape
    for i in range(N):
        m[i] = 0.0
    for j in range(d):
        wj = w[j]
        for i in range(N):
            m[i] += ZT[j, i] * wj
    s = min_value(m, N)
    if not s > s_floor:
        return False, 0.0, 0.0, 0.0
    log_scale, lsum = loss_weights_inplace(m, N, s, loss, ubuf, ubits, a, rule == 2)
    gnorm2 = 0.0
    for j in range(d):
        acc = 0.0
        for i in range(N):
            acc += m[i] * ZT[j, i]
        G[j] = acc
        gnorm2 += acc * acc
    return gnorm2 < np.inf, log_scale, lsum, gnorm2


@njit(nogil=True, cache=True)
def gd_linear_compensated(Z, w, lo, lr, loss, rule, step0, n_steps, rec_steps, rec_w, s_floor):
    """:func:`gd_linear` with the updates summed in compensated arithmetic (``lo``).

    The margins and gradient come from the fastmath :func:`linear_gradient`; this loop and
    :func:`compensated_add` are compiled without fastmath, which LLVM would otherwise use to
    fold the two-sum away (the tests check the result against a 40-digit reference).
    """
    N, d = Z.shape
    ZT = np.ascontiguousarray(Z.T)
    m = np.empty(N)
    ubuf = np.empty(N)
    ubits = ubuf.view(np.int64)
    a = np.empty(N)
    G = np.empty(d)
    k = 0
    K = rec_steps.shape[0]
    for t in range(step0, step0 + n_steps):
        ok, log_scale, lsum, gnorm2 = linear_gradient(
            ZT, w, m, ubuf, ubits, a, G, loss, rule, s_floor
        )
        if not ok:
            return STATUS_DIVERGED, t
        if rule == 0:
            c = lr * math.exp(log_scale)
        elif rule == 1:
            c = lr / math.sqrt(gnorm2)
        else:
            c = lr / lsum
        compensated_add(w, lo, c, G, d)
        if k < K and rec_steps[k] == t + 1:
            for j in range(d):
                rec_w[k, j] = w[j]
            k += 1
    return STATUS_OK, step0 + n_steps
