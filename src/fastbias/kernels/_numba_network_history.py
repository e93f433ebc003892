"""numba kernels: the per-row columns of a ReLU network's history (float64), bit for bit.

:func:`fastbias.optim.history.build_network_history_numpy` is the specification: about thirty
small NumPy reductions per call (norms, log-loss, margins, layer and neuron norms, activity),
~0.3 ms of the fixed cost of a short ``train`` call (issue 12 item 2). Here they are two
compiled passes: :func:`network_rows` over the parameter rows and the outputs, and
:func:`hidden_layer_rows` over one hidden layer's weight matrices and pre-activations. The
forward pass itself (the batched ``matmul``) stays in NumPy.

The columns are *the same numbers bit for bit* as the NumPy ones: every sum is NumPy's
pairwise summation (:func:`_pairwise`: eight accumulators over blocks of at most 128 entries,
halves above; ``np.sum`` starts from 0, ``np.add.reduceat`` from the segment's first entry),
``exp``/``log`` are the C library's (as NumPy's on a machine without AVX-512), ``ldexp`` is
exact. ``tests/test_network_history_kernel.py`` compares the two paths for equality. Rows far
from unit scale (:func:`rows_in_range` false) and magnitudes that overflow float64 are left to
the NumPy path (the caller falls back when ``ok`` is false).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LN2 = math.log(2.0)
_LOG_FLOOR = float(np.log(np.finfo(np.float64).tiny))
_LO, _HI = 2.0**-64, 2.0**64  # history._unit_rows_if_extreme's range

# rows of network_rows' ``vals``
V_THETA_NORM, V_LOG_THETA_NORM, V_MIN_MARGIN, V_LOG_MIN_MARGIN = 0, 1, 2, 3
V_NORMALIZED_MARGIN_THETA, V_LOG_LOSS, V_LOSS = 4, 5, 6
N_VALS = 7


@njit(nogil=True, cache=True)
def _pairwise_block(a, start, n):
    """``sum(a[start:start + n])``, ``n <= 128``, in the order of NumPy's ``pairwise_sum``."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[start + i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    m = n - n % 8
    i = 8
    while i < m:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@njit(nogil=True, cache=True)
def _pairwise(a, start, n):
    """``sum(a[start:start + n])`` in the order of NumPy's ``pairwise_sum`` (float64): blocks
    of at most 128 entries, above that the sum of the two halves (the first a multiple of 8
    long). NumPy's recursion is walked with an explicit stack (a cached recursive numba
    function crashes when it is loaded from the cache)."""
    if n <= 128:
        return _pairwise_block(a, start, n)
    S = np.empty(64, np.int64)  # start, length, stage (0 left, 1 right, 2 add) per frame
    M = np.empty(64, np.int64)
    G = np.empty(64, np.int64)
    left = np.empty(64)
    S[0], M[0], G[0] = start, n, 0
    sp = 1
    ret = 0.0
    while sp > 0:
        i = sp - 1
        m = M[i]
        if m <= 128:
            ret = _pairwise_block(a, S[i], m)
            sp -= 1
            continue
        h = m // 2
        h -= h % 8
        if G[i] == 0:
            G[i] = 1
            S[sp], M[sp], G[sp] = S[i], h, 0
            sp += 1
        elif G[i] == 1:
            left[i] = ret
            G[i] = 2
            S[sp], M[sp], G[sp] = S[i] + h, m - h, 0
            sp += 1
        else:
            ret = left[i] + ret
            sp -= 1
    return ret


@njit(nogil=True, cache=True, inline="always")
def _log_scaled(mant, ex):
    """``history._log_scaled``: ``log(mant * 2**ex)``, the floor where ``mant <= 0``."""
    if mant > 0.0:
        return math.log(mant) + float(ex) * _LN2
    return _LOG_FLOOR


@njit(nogil=True, cache=True)
def _row_top(A, k):
    """The largest ``|A[k, j]|`` of row ``k``, NaN if the row holds one."""
    top = 0.0
    for j in range(A.shape[1]):
        a = abs(A[k, j])
        if a > top or a != a:
            top = a
    return top


@njit(nogil=True, cache=True)
def rows_in_range(thetas):
    """True when no row's largest ``|entry|`` is above ``2**64`` or in ``(0, 2**-64)`` (nor
    NaN): ``history._unit_rows_if_extreme`` leaves such rows as they are."""
    for k in range(thetas.shape[0]):
        top = _row_top(thetas, k)
        if top != top or top > _HI or (top > 0.0 and top < _LO):
            return False
    return True


@njit(nogil=True, cache=True)
def normalize_rows(A, exps):
    """``history._normalize_rows`` of float64 rows (also the linear-predictor history's): the
    rows scaled by ``2**-ex`` so that each nonzero row's largest ``|entry|`` is in [0.5, 1)
    (``ex`` from ``frexp``; 0 for zero and non-finite rows, as NumPy's), and ``exps + ex``.
    Exact (powers of two), so the same bits as the NumPy function."""
    K, d = A.shape
    out = np.empty((K, d))
    ex_out = np.empty(K, np.int64)
    for k in range(K):
        top = _row_top(A, k)
        ex = 0
        if top > 0.0 and top < np.inf:
            ex = math.frexp(top)[1]
        for j in range(d):
            out[k, j] = math.ldexp(A[k, j], -ex)
        ex_out[k] = exps[k] + ex
    return out, ex_out


@njit(nogil=True, cache=True)
def network_rows(thetas, e, out_s, y, loss, depth, offsets):
    """The columns of the parameter rows ``thetas`` (K, P) (true rows ``2**e[k] thetas[k]``)
    and the network's outputs ``out_s`` (K, N) at them.

    ``loss``: 0 exp, 1 logistic, 2 squared (the log-loss rows are filled for the exp loss
    only; the caller computes the others). ``offsets``: where each layer starts in a row,
    and ``P`` at the end. Returns ``(ok, vals (N_VALS, K), layer_norms (n_layers, K),
    iterates (K, P))`` with the magnitudes at their true scale; ``ok`` is false when one of
    them (or a layer norm, or an iterate) is not finite: the NumPy path then writes the
    overflow notes.
    """
    K, P = thetas.shape
    N = out_s.shape[1]
    n_layers = offsets.shape[0] - 1
    vals = np.zeros((N_VALS, K))
    layer_norms = np.zeros((n_layers, K))
    iterates = np.empty((K, P))
    buf = np.empty(max(P, N))
    ok = True
    for k in range(K):
        ek = e[k]
        row = thetas[k]
        # diagnostics.norm(thetas, axis=1): scaled by the largest entry, summed from 0
        top = 0.0
        for j in range(P):
            a = abs(row[j])
            if a > top:
                top = a
        safe = top if top > 0.0 else 1.0
        for j in range(P):
            u = row[j] / safe
            buf[j] = u * u
        t_norm = math.sqrt(0.0 + _pairwise(buf, 0, P)) * top
        vals[V_THETA_NORM, k] = math.ldexp(t_norm, ek)
        vals[V_LOG_THETA_NORM, k] = _log_scaled(t_norm, ek)
        # Model.layer_norms_rows: np.maximum.reduceat / np.add.reduceat (from the first entry)
        for layer in range(n_layers):
            lo, hi = offsets[layer], offsets[layer + 1]
            lt = abs(row[lo])
            for j in range(lo + 1, hi):
                a = abs(row[j])
                if a > lt:
                    lt = a
            ls = lt if lt > 0.0 else 1.0
            for j in range(lo, hi):
                u = abs(row[j]) / ls
                buf[j] = u * u
            layer_norms[layer, k] = math.ldexp(
                math.sqrt(buf[lo] + _pairwise(buf, lo + 1, hi - lo - 1)) * lt, ek
            )
        for j in range(P):
            iterates[k, j] = math.ldexp(row[j], ek)
        if loss == 2:
            continue
        oexp = ek * depth
        s_min = np.inf
        for n in range(N):
            m = y[n] * out_s[k, n]
            buf[n] = m
            if m < s_min:
                s_min = m
            elif m != m:  # (NumPy's min would be NaN: the NumPy path says what it is)
                ok = False
        m_min = math.ldexp(s_min, oexp)
        if loss == 0:  # history._log_loss_rows, exp loss: -m_min + log sum_n exp(-shifted)
            for n in range(N):
                buf[n] = math.exp(-math.ldexp(buf[n] - s_min, oexp))
            log_loss = -m_min + math.log(0.0 + _pairwise(buf, 0, N))
            vals[V_LOG_LOSS, k] = log_loss
            vals[V_LOSS, k] = math.exp(log_loss)
        vals[V_MIN_MARGIN, k] = m_min
        vals[V_LOG_MIN_MARGIN, k] = _log_scaled(s_min, oexp)
        # min margin / ||theta||**L in log domain (history._signed_ratio_log)
        log_den = depth * math.log(t_norm) if t_norm > 0.0 else _LOG_FLOOR
        ratio = 0.0
        if s_min != 0.0 and log_den > _LOG_FLOOR:
            sign = 1.0 if s_min > 0.0 else -1.0
            ratio = sign * math.exp(math.log(abs(s_min)) - log_den)
        vals[V_NORMALIZED_MARGIN_THETA, k] = ratio
    for r in range(N_VALS):
        for k in range(K):
            if not math.isfinite(vals[r, k]):
                ok = False
    for layer in range(n_layers):
        for k in range(K):
            if not math.isfinite(layer_norms[layer, k]):
                ok = False
    for k in range(K):
        for j in range(P):
            if not math.isfinite(iterates[k, j]):
                ok = False
    return ok, vals, layer_norms, iterates


@njit(nogil=True, cache=True)
def hidden_layer_rows(W, a, e):
    """One hidden layer at every row: the incoming weight norms of its neurons
    (``np.linalg.norm`` of the rows of ``W`` (K, width, fan-in), times ``2**e[k]``), the
    activity ``a > 0`` of the pre-activations ``a`` (K, N, width) and its mean per row.
    Returns ``(ok, norms (K, width), active (K, N, width), fraction (K,))``; ``ok`` false
    when a norm is not finite."""
    K, width, fan_in = W.shape
    N = a.shape[1]
    norms = np.empty((K, width))
    active = np.empty(a.shape, dtype=np.bool_)
    fraction = np.empty(K)
    buf = np.empty(fan_in)
    ok = True
    count_all = float(N * width)
    for k in range(K):
        for i in range(width):
            for j in range(fan_in):
                w = W[k, i, j]
                buf[j] = w * w
            v = math.ldexp(math.sqrt(0.0 + _pairwise(buf, 0, fan_in)), e[k])
            norms[k, i] = v
            if not math.isfinite(v):
                ok = False
        count = 0.0
        for n in range(N):
            for i in range(width):
                on = a[k, n, i] > 0.0
                active[k, n, i] = on
                if on:
                    count += 1.0
        fraction[k] = count / count_all
    return ok, norms, active, fraction
