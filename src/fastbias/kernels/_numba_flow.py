"""numba kernels for gradient flow: an adaptive Dormand-Prince 5(4) integrator in log-time.

The flow ``d theta/dt = -grad L(theta)`` is integrated in ``s = log(1 + t)``:

    d theta/ds = (1 + t) (-grad L(theta)) = exp(s + log_scale(theta)) * g(theta),

where ``-grad L = exp(log_scale) * g`` is the log-domain gradient of the GD kernels
(``_numba_models.predictor_step``: bounded weights ``q`` and ``log_scale = -min margin`` for
the exponential loss). On separable data the margins grow like ``log t``, so
``s + log_scale`` stays of order one: neither ``t = 1e300`` nor a loss of ``exp(-1e4)``
overflows or underflows, and the ODE in ``s`` is not stiff (its Jacobian is bounded).

One call of :func:`integrate` takes up to ``max_steps`` Runge-Kutta steps (accepted or
rejected) in nopython, nogil mode; the integrator state (``s``, step size, controller memory,
counters, the FSAL derivative) lives in arrays owned by the caller, so a run split into
chunks takes exactly the same steps as one call.

Method: the Dormand-Prince 5(4) pair (Hairer, Norsett & Wanner, *Solving ODEs I*, II.5) with
local extrapolation, FSAL, the mixed error norm
``sqrt(mean((err_i / (atol + rtol max(|y_i|, |y_new_i|)))^2))`` and the PI step-size
controller of DOPRI5 (``beta = 0.04``). Steps are shortened to land exactly on the recording
times, so recorded iterates have full 5th-order accuracy (no interpolation).

Models (``kind``): 0 linear, 1 diagonal, 2 fully connected, 3 convolutional (time-domain
filters, Fourier-domain arithmetic of ``_numba_conv``), 4 tensor. The model-specific gradient
code is reused from ``_numba_models``, ``_numba_conv`` and ``_numba_tensor``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._numba import _FAST
from ._numba_conv import (
    conv_gradients,
    conv_products,
    partial_gradient,
    partial_spectrum,
    twiddles,
)
from ._numba_models import (
    diagonal_predictor,
    diagonal_vjp,
    fc_predictor,
    fc_vjp,
    predictor_step_scaled,
)
from ._numba_network import _buffers as _network_buffers
from ._numba_network import build_weights, loss_step, network_backward, network_forward
from ._numba_tensor import _predictor_pos, _vjp_pos

KIND_LINEAR = 0
KIND_DIAGONAL = 1
KIND_FULLY_CONNECTED = 2
KIND_CONVOLUTIONAL = 3
KIND_TENSOR = 4
KIND_NETWORK = 5  # Vardi et al.'s class N: ZT is X^T, targets the labels

FLOW_DONE = 0  # reached s_end
FLOW_CHUNK = 1  # used up max_steps in this call; call again
FLOW_STATIONARY = 2  # squared loss: the flow is at rest to the tolerance
FLOW_UNDERFLOW = 3  # the step size fell below the resolution of s
FLOW_BAD_START = 4  # the derivative at the current point is not finite

# Slots of the integrator state array.
ST_S, ST_H, ST_FACOLD, ST_ACC, ST_REJ, ST_EVAL, ST_KREC, ST_HAVE_K1, ST_LASTREJ, ST_SREST = range(
    10
)
STATE_SIZE = 10
# Squared loss: once the flow looks at rest (at s_rest), keep integrating until
# 1 + t = _REST_FACTOR (1 + t_rest) before stopping, so that slow modes settle too.
_LOG_REST_FACTOR = math.log(4.0)

# Dormand-Prince 5(4) tableau.
_C2, _C3, _C4, _C5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
_A21 = 1.0 / 5.0
_A31, _A32 = 3.0 / 40.0, 9.0 / 40.0
_A41, _A42, _A43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0
_A51, _A52, _A53, _A54 = 19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0
_A61, _A62, _A63 = 9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0
_A64, _A65 = 49.0 / 176.0, -5103.0 / 18656.0
_A71, _A73, _A74 = 35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0
_A75, _A76 = -2187.0 / 6784.0, 11.0 / 84.0
_E1, _E3, _E4 = 71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0
_E5, _E6, _E7 = -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0

# Step-size controller (DOPRI5 defaults).
_SAFE = 0.9
_FAC1 = 0.2  # smallest ratio h_new / h
_FAC2 = 10.0  # largest ratio h_new / h
_BETA = 0.04
_EXPO1 = 0.2 - _BETA * 0.75
_EPS = 2.220446049250313e-16


@njit(nogil=True, cache=True)
def make_workspace(kind, N, d, ints, pos):
    """Scratch arrays for :func:`flow_gradient`: ``(ws, cs)``.

    ``ws`` is shared by all models; ``cs`` holds the convolutional model's spectra and DFT
    tables (size-1 placeholders for the other models).
    """
    m = np.empty(N)
    ubuf = np.empty(N)
    ubits = ubuf.view(np.int64)
    a = np.empty(N)
    G = np.empty(d)
    beta = np.empty(d)
    depth = 1
    width = 1
    if kind == KIND_DIAGONAL:
        depth = ints[0]
    elif kind == KIND_FULLY_CONNECTED:
        depth = ints.shape[0]
        width = ints.max()
    elif kind == KIND_TENSOR:
        depth = pos.shape[1]
    prefix = np.empty((depth, d))
    right = np.zeros((depth, width))
    va = np.zeros(width)
    vb = np.zeros(width)
    pre = np.empty(depth)
    ws = (m, ubuf, ubits, a, G, beta, prefix, right, va, vb, pre)

    L = 1
    H = 1
    dd = 1
    if kind == KIND_CONVOLUTIONAL:
        L = ints.shape[0]
        H = d // 2 + 1
        dd = d
    spec = np.zeros((L, 2, H))
    beta_re = np.empty(H)
    beta_im = np.empty(H)
    pre_re = np.empty((L, H))
    pre_im = np.empty((L, H))
    suf_re = np.empty(H)
    suf_im = np.empty(H)
    G_re = np.empty(H)
    G_im = np.empty(H)
    upd = np.empty((L, 2, H))
    b = np.empty(d)
    PC = np.zeros((dd, H))
    PS = np.zeros((dd, H))
    cw = np.ones(H)
    if kind == KIND_CONVOLUTIONAL:
        ctab, stab = twiddles(d)
        for j in range(H):
            cw[j] = (1.0 if (j == 0 or 2 * j == d) else 2.0) / d
        for p in range(d):
            r = 0
            for j in range(H):
                PC[p, j] = ctab[r]
                PS[p, j] = stab[r]
                r += p
                if r >= d:
                    r -= d
    cs = (spec, beta_re, beta_im, pre_re, pre_im, suf_re, suf_im, G_re, G_im, upd, b, PC, PS, cw)
    return ws, cs


@njit(nogil=True, cache=True)
def make_network_workspace(net, N):
    """Buffers of the network kernels for N samples (tiny for the other kinds)."""
    dims, w_off = net[0], net[1]
    wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b = _network_buffers(dims, w_off, N)
    return wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b, np.empty(N), np.empty(N)


@njit(nogil=True, cache=True, fastmath=_FAST, inline="always")
def model_gradient(
    kind, theta, ZT, targets, loss, rule, mexp, floor, ints, offsets, pos, jidx, vals, ws, cs,
    g, net, nws,
):  # fmt: skip
    """``g <- -grad L(theta) / exp(log_scale)``; returns ``(ok, log_scale, lsum)``.

    ``rule`` 2 also computes ``lsum = L / exp(log_scale)``; ``mexp``: the outputs are those of
    ``2**(mexp / L) theta`` (the scaled parameters of ``_numba_models``), ``floor`` the
    divergence test.

    ``ZT`` is the ``(d, N)`` data matrix ``Z^T`` (for ``kind = 3`` the Fourier rows
    ``_fft.real_fourier_rows(Z)``). ``ints``: depth (diagonal), ``dims`` (fully connected) or
    kernel sizes (convolutional); ``offsets``: layer starts in ``theta``; ``pos``, ``jidx``,
    ``vals``: the tensor model's nonzeros. ``ok`` is False for non-finite margins.
    """
    m, ubuf, ubits, a, G, beta, prefix, right, va, vb, pre = ws
    if kind == KIND_NETWORK:
        dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par, relu, c0 = net
        wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b, out, dout = nws
        build_weights(theta, gidx, wbuf)
        network_forward(
            theta, ZT, dims, w_off, dense, nz_off, nz_row, nz_col, nz_par, relu, wbuf, abuf,
            hbuf, out,
        )  # fmt: skip
        ok, ls, lsum = loss_step(out, targets, loss, rule, floor, m, dout, ubuf, ubits, a, mexp)
        if ok:
            network_backward(
                theta, ZT, dout, dims, w_off, gidx, dense, nz_off, nz_row, nz_col, nz_par,
                relu, c0, wbuf, gwbuf, abuf, hbuf, dbuf_a, dbuf_b, g,
            )  # fmt: skip
        return ok, ls, lsum
    if kind == KIND_LINEAR:
        ok, ls, lsum = predictor_step_scaled(
            ZT, theta, targets, loss, rule, floor, m, ubuf, ubits, a, g, mexp
        )
        return ok, ls, lsum
    if kind == KIND_DIAGONAL:
        depth = ints[0]
        diagonal_predictor(theta, depth, beta, prefix)
        ok, ls, lsum = predictor_step_scaled(
            ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G, mexp
        )
        if ok:
            diagonal_vjp(theta, G, depth, prefix, g)
        return ok, ls, lsum
    if kind == KIND_FULLY_CONNECTED:
        fc_predictor(theta, ints, offsets, right, beta)
        ok, ls, lsum = predictor_step_scaled(
            ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G, mexp
        )
        if ok:
            fc_vjp(theta, G, ints, offsets, right, va, vb, g)
        return ok, ls, lsum
    if kind == KIND_CONVOLUTIONAL:
        spec, beta_re, beta_im, pre_re, pre_im, suf_re, suf_im, G_re, G_im, upd, b, PC, PS, cw = cs
        d = ZT.shape[0]
        H = d // 2 + 1
        nI = d - H
        L = ints.shape[0]
        for layer in range(L):
            partial_spectrum(
                theta, offsets[layer], ints[layer], PC, PS, spec[layer, 0], spec[layer, 1]
            )
        conv_products(spec, beta_re, beta_im, pre_re, pre_im, b, cw, nI)
        ok, ls, lsum = predictor_step_scaled(
            ZT, b, targets, loss, rule, floor, m, ubuf, ubits, a, G, mexp
        )
        if ok:
            conv_gradients(spec, G, G_re, G_im, pre_re, pre_im, suf_re, suf_im, upd, cw, nI, ints)
            for layer in range(L):
                partial_gradient(
                    upd[layer, 0], upd[layer, 1], cw, ints[layer], PC, PS, g, offsets[layer]
                )
        return ok, ls, lsum
    # tensor
    _predictor_pos(jidx, pos, vals, theta, beta)
    ok, ls, lsum = predictor_step_scaled(
        ZT, beta, targets, loss, rule, floor, m, ubuf, ubits, a, G, mexp
    )
    if ok:
        _vjp_pos(jidx, pos, vals, G, theta, g, pre)
    return ok, ls, lsum


@njit(nogil=True, cache=True)
def flow_gradient(
    kind, theta, ZT, targets, loss, ints, offsets, pos, jidx, vals, ws, cs, g, net, nws
):
    """``g <- -grad L(theta) / exp(log_scale)``; returns ``(ok, log_scale)`` (see
    :func:`model_gradient`)."""
    ok, ls, _ = model_gradient(
        kind, theta, ZT, targets, loss, 0, 0, -np.inf, ints, offsets, pos, jidx, vals, ws, cs,
        g, net, nws,
    )  # fmt: skip
    return ok, ls


@njit(nogil=True, cache=True)
def rhs(s, y, out, problem):
    """``out <- d theta/ds = exp(s + log_scale) g`` at ``(s, y)``; False if not finite.

    ``problem`` bundles what stays fixed during an integration: ``(kind, ZT, targets, loss,
    ints, offsets, pos, jidx, vals, ws, cs, net, nws)``.
    """
    kind, ZT, targets, loss, ints, offsets, pos, jidx, vals, ws, cs, net, nws = problem
    ok, ls = flow_gradient(
        kind, y, ZT, targets, loss, ints, offsets, pos, jidx, vals, ws, cs, out, net, nws
    )
    if not ok:
        return False
    c = math.exp(s + ls)
    finite = c < np.inf
    for i in range(out.shape[0]):
        v = c * out[i]
        out[i] = v
        finite = finite and abs(v) < np.inf
    return finite


@njit(nogil=True, cache=True)
def _scaled_norm(v, y0, y1, rtol, atol):
    """``sqrt(mean((v_i / (atol + rtol max(|y0_i|, |y1_i|)))^2))`` (Hairer's error norm),
    scaled by the largest term so that it neither overflows nor underflows; NaN -> inf."""
    n = v.shape[0]
    top = 0.0
    for i in range(n):
        sc = atol + rtol * max(abs(y0[i]), abs(y1[i]))
        if sc > 0.0:
            r = abs(v[i]) / sc
        elif v[i] == 0.0:
            r = 0.0
        else:
            r = np.inf
        if not r <= top:  # larger, or NaN
            top = r if r == r else np.inf
    if top == 0.0 or top == np.inf:
        return top
    acc = 0.0
    for i in range(n):
        sc = atol + rtol * max(abs(y0[i]), abs(y1[i]))
        r = abs(v[i]) / sc if sc > 0.0 else 0.0
        acc += (r / top) ** 2
    return top * math.sqrt(acc / n)


@njit(nogil=True, cache=True)
def flow_derivative(
    kind, s, theta, ZT, targets, loss, ints, offsets, pos, jidx, vals, out, net=None
):
    """``d theta/ds`` at one point, for tests: returns False if it is not finite."""
    if net is None:
        net = dummy_net()
    ws, cs = make_workspace(kind, ZT.shape[1], ZT.shape[0], ints, pos)
    nws = make_network_workspace(net, ZT.shape[1])
    problem = (kind, ZT, targets, loss, ints, offsets, pos, jidx, vals, ws, cs, net, nws)
    return rhs(s, theta, out, problem)


@njit(nogil=True, cache=True)
def integrate(
    kind,
    theta,
    state,
    k1,
    s_end,
    rec_s,
    rec_theta,
    rtol,
    atol,
    max_steps,
    ZT,
    targets,
    loss,
    ints,
    offsets,
    pos,
    jidx,
    vals,
    net,
):
    """Integrate ``d theta/ds = exp(s + log_scale) g(theta)`` from ``state[ST_S]`` towards
    ``s_end`` with at most ``max_steps`` Dormand-Prince steps; returns a ``FLOW_*`` status.

    Trusts its inputs: ``theta`` (n,) and ``k1`` (n,) float64, updated in place; ``state``
    (``STATE_SIZE``,) float64 (``s``, step size (0: choose one), controller memory, accepted,
    rejected and evaluation counts, next record index, whether ``k1`` holds the derivative at
    ``theta``, whether the last step was rejected); ``rec_s`` increasing values in
    ``(state[ST_S], s_end]``; ``rec_theta`` (len(rec_s), n) written at those times.
    """
    n = theta.shape[0]
    d = ZT.shape[0]
    N = ZT.shape[1]
    ws, cs = make_workspace(kind, N, d, ints, pos)
    nws = make_network_workspace(net, N)
    problem = (kind, ZT, targets, loss, ints, offsets, pos, jidx, vals, ws, cs, net, nws)
    k2 = np.empty(n)
    k3 = np.empty(n)
    k4 = np.empty(n)
    k5 = np.empty(n)
    k6 = np.empty(n)
    k7 = np.empty(n)
    ytmp = np.empty(n)
    y6 = np.empty(n)
    ynew = np.empty(n)
    errv = np.empty(n)

    s = state[ST_S]
    h = state[ST_H]
    facold = state[ST_FACOLD]
    n_acc = state[ST_ACC]
    n_rej = state[ST_REJ]
    n_eval = state[ST_EVAL]
    k_rec = int(state[ST_KREC])
    last_rej = state[ST_LASTREJ] != 0.0
    s_rest = state[ST_SREST]
    K = rec_s.shape[0]
    status = FLOW_CHUNK

    if state[ST_HAVE_K1] == 0.0:
        n_eval += 1
        if not rhs(s, theta, k1, problem):
            status = FLOW_BAD_START
            max_steps = 0
        state[ST_HAVE_K1] = 1.0
    if h <= 0.0 and max_steps > 0:
        # Initial step (Hairer, Norsett & Wanner II.4): an explicit Euler probe.
        d0 = _scaled_norm(theta, theta, theta, rtol, atol)
        d1 = _scaled_norm(k1, theta, theta, rtol, atol)
        h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h0 = min(h0, s_end - s)
        if not h0 > 0.0:
            h0 = 16.0 * _EPS * max(abs(s), 1e-300)
        for i in range(n):
            ytmp[i] = theta[i] + h0 * k1[i]
        n_eval += 1
        if rhs(s + h0, ytmp, k2, problem):
            for i in range(n):
                errv[i] = k2[i] - k1[i]
            d2 = _scaled_norm(errv, theta, theta, rtol, atol) / h0
            dm = max(d1, d2)
            if not dm < np.inf:
                h = h0
            else:
                h1 = max(1e-6, h0 * 1e-3) if dm <= 1e-15 else (0.01 / dm) ** 0.2
                h = min(100.0 * h0, h1)
        else:
            h = 0.1 * h0
        facold = 1e-4

    taken = 0
    while status == FLOW_CHUNK:
        while k_rec < K and rec_s[k_rec] <= s:
            for i in range(n):
                rec_theta[k_rec, i] = theta[i]
            k_rec += 1
        if s >= s_end:
            status = FLOW_DONE
            break
        if taken >= max_steps:
            break
        target = s_end
        if k_rec < K and rec_s[k_rec] < target:
            target = rec_s[k_rec]
        clamp = False
        h_try = h
        if s + 1.05 * h >= target:
            h_try = target - s
            clamp = True
        if not h_try > 16.0 * _EPS * max(abs(s), 1e-300):
            if clamp and h_try >= 0.0:
                # The target is within rounding of s: it is reached (theta moves by
                # about h |f|, below the resolution of the time variable).
                s = target
                continue
            status = FLOW_UNDERFLOW
            break
        taken += 1

        # ---- the stages ----------------------------------------------------------------------
        ok = True
        for i in range(n):
            ytmp[i] = theta[i] + h_try * _A21 * k1[i]
        ok = ok and rhs(s + _C2 * h_try, ytmp, k2, problem)
        if ok:
            for i in range(n):
                ytmp[i] = theta[i] + h_try * (_A31 * k1[i] + _A32 * k2[i])
            ok = rhs(s + _C3 * h_try, ytmp, k3, problem)
        if ok:
            for i in range(n):
                ytmp[i] = theta[i] + h_try * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
            ok = rhs(s + _C4 * h_try, ytmp, k4, problem)
        if ok:
            for i in range(n):
                ytmp[i] = theta[i] + h_try * (
                    _A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i]
                )
            ok = rhs(s + _C5 * h_try, ytmp, k5, problem)
        s_new = target if clamp else s + h_try
        if ok:
            for i in range(n):
                y6[i] = theta[i] + h_try * (
                    _A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i] + _A65 * k5[i]
                )
            ok = rhs(s_new, y6, k6, problem)
        if ok:
            for i in range(n):
                ynew[i] = theta[i] + h_try * (
                    _A71 * k1[i] + _A73 * k3[i] + _A74 * k4[i] + _A75 * k5[i] + _A76 * k6[i]
                )
            ok = rhs(s_new, ynew, k7, problem)
        n_eval += 6
        err = np.inf
        if ok:
            for i in range(n):
                errv[i] = h_try * (
                    _E1 * k1[i]
                    + _E3 * k3[i]
                    + _E4 * k4[i]
                    + _E5 * k5[i]
                    + _E6 * k6[i]
                    + _E7 * k7[i]
                )
            err = _scaled_norm(errv, theta, ynew, rtol, atol)
        if not err < np.inf:
            # A stage overflowed or produced NaN: retry with a much shorter step.
            n_rej += 1
            last_rej = True
            h = _FAC1 * h_try
            continue

        fac11 = err**_EXPO1
        if err <= 1.0:
            # ---- accepted ------------------------------------------------------------------
            fac = fac11 / facold**_BETA
            fac = max(1.0 / _FAC2, min(1.0 / _FAC1, fac / _SAFE))
            h_new = h_try / fac
            if last_rej:
                h_new = min(h_new, h_try)
            facold = max(err, 1e-4)
            if loss == 2:
                # Squared loss: the flow settles at an interpolant (or least-squares point),
                # where the ODE becomes stiff in s. The flow looks at rest once the step is
                # stability-limited (h rho >= 1, with rho = ||k7 - k6|| / ||y_new - y6|| the
                # DOPRI5 estimate of the Lipschitz constant) and the motion left in the fast
                # modes, ||f|| / rho, is within the tolerance. Slow modes can still move by
                # up to cond * tol then, so the run goes on to 1 + t = 4 (1 + t_rest), where
                # a mode that was still moving at t_rest has decayed by another factor
                # exp(-3 lambda t_rest), and stops there.
                dy = 0.0
                dk = 0.0
                fmax = 0.0
                ymax = 0.0
                for i in range(n):
                    dy += (ynew[i] - y6[i]) ** 2
                    dk += (k7[i] - k6[i]) ** 2
                    fmax = max(fmax, abs(k7[i]))
                    ymax = max(ymax, abs(ynew[i]))
                if dy > 0.0:
                    rho = math.sqrt(dk / dy)
                    if s_rest == 0.0 and h_try * rho >= 1.0 and fmax <= rho * (atol + rtol * ymax):
                        s_rest = s_new
                if s_rest > 0.0 and s_new >= s_rest + _LOG_REST_FACTOR:
                    status = FLOW_STATIONARY
            for i in range(n):
                theta[i] = ynew[i]
                k1[i] = k7[i]
            s = s_new
            n_acc += 1
            last_rej = False
            if clamp:
                h = max(h_new, h) if h_new >= h_try else h_new
                if k_rec < K and s == rec_s[k_rec]:
                    for i in range(n):
                        rec_theta[k_rec, i] = theta[i]
                    k_rec += 1
            else:
                h = h_new
        else:
            n_rej += 1
            last_rej = True
            h = h_try / min(1.0 / _FAC1, fac11 / _SAFE)

    state[ST_S] = s
    state[ST_H] = h
    state[ST_FACOLD] = facold
    state[ST_ACC] = n_acc
    state[ST_REJ] = n_rej
    state[ST_EVAL] = n_eval
    state[ST_KREC] = k_rec
    state[ST_LASTREJ] = 1.0 if last_rej else 0.0
    state[ST_SREST] = s_rest
    return status


@njit(nogil=True, cache=True)
def dummy_net():
    """The ``net`` argument of :func:`integrate` for the kinds other than networks."""
    one = np.zeros(1, dtype=np.int64)
    return (
        np.ones(2, dtype=np.int64), np.array([0, 1], dtype=np.int64), one,
        np.zeros(1, dtype=np.bool_), np.array([0, 1], dtype=np.int64), one, one, one,
        False, 0.0,
    )  # fmt: skip
