"""numba kernel: every per-row column of a run's history in one compiled call (float64).

:func:`fastbias.optim.history.build_history_numpy` is the specification: the same columns
from the same scaled rows, in ~150 small NumPy operations (the fixed cost of a short run,
issue 12 item 2). Here each recorded row is one pass over its entries: the norms scaled by
their largest entry (``diagnostics.norm``), the log-loss from the scaled margins
(``-m_min + log sum_n exp(-(m_n - m_min))``), the gaps of Soudry et al. eqs. 3.1-3.3 from the
difference of unit vectors, the residuals of eq. 2.3, the layer norms. Sums run in index
order (NumPy's are pairwise), so the columns agree with the NumPy ones to round-off, not bit
for bit (``tests/test_history_kernel.py``). No floating-point warnings: what overflows is
``inf`` here and is left out of the history by the caller.

Layout of ``cols`` (rows; ``C_*`` / ``R_*`` / ``D_*`` below): classification ``C_*``,
regression ``R_*``, then the deep-model rows ``D_*`` after them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# classification rows
C_LOSS, C_LOG_LOSS, C_NORM, C_LOG_NORM, C_MIN_MARGIN, C_LOG_MIN_MARGIN = 0, 1, 2, 3, 4, 5
C_NORMALIZED_MARGIN, C_ANGLE_GAP, C_DIRECTION_DISTANCE, C_MARGIN_GAP = 6, 7, 8, 9
C_RESIDUAL_NORM, C_THEOREM4_RESIDUAL_NORM = 10, 11
# regression rows
R_LOSS, R_LOG_LOSS, R_NORM, R_LOG_NORM, R_MAX_ABS_RESIDUAL, R_DISTANCE = 0, 1, 2, 3, 4, 5
N_BASE = 12  # the deep-model rows follow
D_THETA_NORM, D_LOG_THETA_NORM, D_NORMALIZED_MARGIN_THETA = 12, 13, 14
N_COLS = 15

_LN2 = math.log(2.0)
_LOG_FLOOR = float(np.log(np.finfo(np.float64).tiny))


@njit(nogil=True, cache=True, inline="always")
def _norm(v):
    """``diagnostics.norm`` of a vector: scaled by ``max |v|``; ``inf``/NaN propagate."""
    top = 0.0
    for j in range(v.shape[0]):
        a = abs(v[j])
        if a > top or a != a:
            top = a
    if not (top > 0.0):
        return top  # 0 (or NaN)
    if top == np.inf:
        return np.inf
    acc = 0.0
    for j in range(v.shape[0]):
        q = v[j] / top
        acc += q * q
    return math.sqrt(acc) * top


@njit(nogil=True, cache=True, inline="always")
def _log_scaled(mant, ex):
    """``log(mant * 2**ex)``, the floor where ``mant <= 0``."""
    if mant > 0.0:
        return math.log(mant) + ex * _LN2
    return _LOG_FLOOR


@njit(nogil=True, cache=True, inline="always")
def _log_value(m, loss):
    """``log l(m)`` (``losses.Loss.log_value``)."""
    if loss == 0:
        return -m
    if m > 0.0:
        x = math.exp(-m)
        ratio = math.log1p(x) / x if x > 1e-300 else 1.0
        return -m + math.log(ratio)
    return math.log(-m + math.log1p(math.exp(m)))  # log(logaddexp(0, -m)) for m <= 0


@njit(nogil=True, cache=True)
def history_rows(
    B, Bn, bexp, ex0, out_s, Z, targets, regression, loss, ref, w_tilde, steps, thetas, e,
    offsets, depth,
):  # fmt: skip
    """The columns of every row ``k`` of a history (see the module docstring).

    ``B`` (K, d): the predictors as recorded (true rows ``2**ex0[k] B[k]``); ``Bn``, ``bexp``:
    the same rows normalized (``history._normalize_rows``); ``out_s = Bn Z^T``; ``ref``:
    empty when absent; ``w_tilde`` (0, d) when absent, (1, d) for every row or (K, d) one per
    row (the stacked runs of a lock-step batch); ``thetas`` (K, n) and ``e``: the scaled
    parameter rows of a deep model (empty for the linear model), ``offsets`` its layer
    offsets (with the end). Returns ``(cols (N_COLS, K), U (K, d), layer_norms (K, layers))``.
    """
    K, d = Bn.shape
    N = out_s.shape[1]
    cols = np.zeros((N_COLS, K))
    U = np.zeros((K, d))
    n_layers = offsets.shape[0] - 1
    layers = np.zeros((K, max(n_layers, 0)))
    has_ref = ref.shape[0] > 0
    has_wt = w_tilde.shape[0] > 0
    deep = thetas.shape[0] > 0
    # the reference: unit vector, margins of its direction
    vu = np.zeros(d)
    c = np.zeros(N)
    c_min = 0.0
    if has_ref:
        rn = _norm(ref)
        for j in range(d):
            vu[j] = ref[j] / rn
        c_min = np.inf
        for n in range(N):
            acc = 0.0
            for j in range(d):
                acc += Z[n, j] * vu[j]
            c[n] = acc
            if acc < c_min:
                c_min = acc
    delta = np.empty(d)
    base = np.empty(d)
    R = np.empty(N)
    for k in range(K):
        ex = bexp[k]
        row = Bn[k]
        bnorm_s = _norm(row)
        nonzero = bnorm_s > 0.0
        for j in range(d):
            U[k, j] = row[j] / bnorm_s if nonzero else row[j]
            base[j] = math.ldexp(B[k, j], ex0[k]) if ex0[k] != 0 else B[k, j]
        log_norm = _log_scaled(bnorm_s, ex)
        s = out_s[k]
        if regression:
            rexp = ex if ex > 0 else 0
            amax = 0.0
            for n in range(N):
                if ex > 0:
                    r = s[n] - math.ldexp(targets[n], -ex)
                else:
                    r = math.ldexp(s[n], ex) - targets[n]
                R[n] = r
                if abs(r) > amax:
                    amax = abs(r)
            if amax > 0.0:
                ssq = 0.0
                for n in range(N):
                    q = R[n] / amax
                    ssq += q * q
                log_loss = math.log(0.5 * ssq) + 2.0 * (math.log(amax) + rexp * _LN2)
            else:
                log_loss = _LOG_FLOOR
            cols[R_LOSS, k] = math.exp(log_loss) if log_loss < 709.0 else np.inf
            cols[R_LOG_LOSS, k] = log_loss
            cols[R_NORM, k] = math.ldexp(bnorm_s, ex)
            cols[R_LOG_NORM, k] = log_norm
            cols[R_MAX_ABS_RESIDUAL, k] = math.ldexp(amax, rexp)
            if has_ref:
                for j in range(d):
                    delta[j] = base[j] - ref[j]
                cols[R_DISTANCE, k] = _norm(delta)
            s_min = 0.0
        else:
            s_min = np.inf
            for n in range(N):
                if s[n] < s_min:
                    s_min = s[n]
            m_min = math.ldexp(s_min, ex)
            if loss == 0 or m_min > 40.0:  # shifted by the smallest margin (exact tail)
                acc = 0.0
                for n in range(N):
                    acc += math.exp(-math.ldexp(s[n] - s_min, ex))
                log_loss = -m_min + math.log(acc)
            else:  # logistic with moderate margins: every margin fits in float64
                top = -np.inf
                for n in range(N):
                    a = _log_value(math.ldexp(s[n], ex), loss)
                    R[n] = a
                    if a > top:
                        top = a
                if math.isfinite(top):
                    acc = 0.0
                    for n in range(N):
                        acc += math.exp(R[n] - top)
                    log_loss = top + math.log(acc)
                else:
                    log_loss = top
            cols[C_LOSS, k] = math.exp(log_loss) if log_loss < 709.0 else np.inf
            cols[C_LOG_LOSS, k] = log_loss
            cols[C_NORM, k] = math.ldexp(bnorm_s, ex)
            cols[C_LOG_NORM, k] = log_norm
            cols[C_MIN_MARGIN, k] = m_min
            cols[C_LOG_MIN_MARGIN, k] = _log_scaled(s_min, ex)
            cols[C_NORMALIZED_MARGIN, k] = s_min / bnorm_s if nonzero else 0.0
            if has_ref:
                if nonzero:  # delta = u / ||u|| - v / ||v|| (diagnostics._unit_delta)
                    un = _norm(U[k])
                    for j in range(d):
                        delta[j] = U[k, j] / un - vu[j]
                    dd = _norm(delta)
                    mg = -np.inf
                    for n in range(N):
                        acc = 0.0
                        for j in range(d):
                            acc += delta[j] * Z[n, j]
                        g = (c_min - c[n]) - acc
                        if g > mg:
                            mg = g
                    cols[C_ANGLE_GAP, k] = dd * dd / 2.0
                    cols[C_DIRECTION_DISTANCE, k] = dd
                    cols[C_MARGIN_GAP, k] = mg
                else:  # beta = 0 has cosine 0 with every direction
                    cols[C_ANGLE_GAP, k] = 1.0
                    cols[C_DIRECTION_DISTANCE, k] = 1.0
                    cols[C_MARGIN_GAP, k] = c_min
                logt = math.log(steps[k])
                for j in range(d):
                    delta[j] = base[j] - logt * ref[j]
                cols[C_RESIDUAL_NORM, k] = _norm(delta)
                if has_wt:
                    wrow = 0 if w_tilde.shape[0] == 1 else k
                    for j in range(d):
                        delta[j] -= w_tilde[wrow, j]
                    cols[C_THEOREM4_RESIDUAL_NORM, k] = _norm(delta)
        if deep:
            th = thetas[k]
            t_norm_s = _norm(th)
            cols[D_THETA_NORM, k] = math.ldexp(t_norm_s, e[k])
            cols[D_LOG_THETA_NORM, k] = _log_scaled(t_norm_s, e[k])
            for layer in range(n_layers):
                layers[k, layer] = _norm(th[offsets[layer] : offsets[layer + 1]])
            if not regression:  # min margin / ||theta||**L in log domain
                if t_norm_s > 0.0:
                    log_den = depth * math.log(t_norm_s) - (ex - e[k] * depth) * _LN2
                else:
                    log_den = _LOG_FLOOR
                if s_min != 0.0 and log_den > _LOG_FLOOR:
                    r = math.exp(math.log(abs(s_min)) - log_den)
                    cols[D_NORMALIZED_MARGIN_THETA, k] = r if s_min > 0.0 else -r
    return cols, U, layers
