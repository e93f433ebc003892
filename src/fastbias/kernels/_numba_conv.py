"""numba GD kernel for linear circular convolutional networks, run in the Fourier domain.

The network (Gunasekar et al. 2018, eqs. 2-3; Yun et al. 2021, eq. 12) maps ``h -> h * w_l``
with ``(h * w)[i] = sum_{p<k_l} w[p] h[(i+p) mod d]`` for ``l < L`` and outputs
``h_{L-1} . w_L``. Its predictor satisfies (Lemma 3)

    beta_hat[j] = prod_l w_hat_l[j],    w_hat_l = DFT of w_l zero-padded to d,

so on the half spectrum (``H = d // 2 + 1`` bins, weights ``c_j = 1`` at DC and Nyquist, 2
otherwise) everything a GD step needs is elementwise:

* margins ``m_n = z_n . beta = (1/d) sum_j c_j Re(conj(zhat_n[j]) beta_hat[j])`` (Parseval),
  with the data's DFT computed once per run (``_fft.real_fourier_rows``, a real ``(d, N)``
  matrix, so :func:`predictor_step` of ``_numba_models`` does this part unchanged);
* ``G_hat = sum_n q_n zhat_n`` (the DFT of ``G = Z^T q``), from the same call;
* the gradient of ``<G, beta>`` with respect to the time-domain filter ``w_l`` is
  ``g_l = IDFT(u_l)`` with ``u_l = G_hat conj(P_l)``, ``P_l = prod_{k != l} w_hat_k``, i.e.
  ``g_l[p] = (1/d) sum_{j<H} c_j Re(u_l[j] exp(2 pi i p j / d))``. Its DFT is ``u_l`` itself,
  so GD on a full-width filter is exactly ``w_hat_l[j] += eta_t G_hat[j] conj(P_l[j])``
  (Gunasekar et al. Lemma 10, written for the real filter);
* ``||g_l||^2 = (1/d) sum_{j<H} c_j |u_l[j]|^2`` (Parseval) for the normalized step rule.

Full-width layers (``k_l = d``) are carried as half spectra (``spec``); layers with
``k_l < d`` stay in the time domain (inside ``theta``): their spectra and gradients are
``H x k_l`` products with a twiddle table. A full-width step costs ``O(N d + L d)`` and has no
FFT inside the loop. The kernel reads ``theta`` on entry (unless the caller says that ``spec``
already holds its spectra, bit for bit the state of the previous call) and writes the time
domain parameters back to ``theta`` (explicit inverse DFT) on exit and into ``rec_theta``.

The per-step helpers are inlined into the kernel (``inline="always"``): as separate calls
(many array arguments each) they cost about 0.2 us more per step at ``d = N = 64``, ``L = 3``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba import _FAST
from ._numba_models import RESCALE_BITS, predictor_step_scaled, step_coefficient


@njit(nogil=True, cache=True)
def twiddles(d):
    """``cos(2 pi r / d)`` and ``sin(2 pi r / d)`` for ``r < d``, exact at the quarter points."""
    ctab = np.empty(d)
    stab = np.empty(d)
    for r in range(d):
        ang = 2.0 * math.pi * r / d
        ctab[r] = math.cos(ang)
        stab[r] = math.sin(ang)
    ctab[0] = 1.0
    stab[0] = 0.0
    if d % 2 == 0:
        ctab[d // 2] = -1.0
        stab[d // 2] = 0.0
    if d % 4 == 0:
        ctab[d // 4] = 0.0
        stab[d // 4] = 1.0
        ctab[3 * d // 4] = 0.0
        stab[3 * d // 4] = -1.0
    return ctab, stab


@njit(nogil=True, cache=True, fastmath=_FAST)
def half_spectrum(w, off, k, d, ctab, stab, out_re, out_im):
    """``out[j] = sum_{p<k} w[off+p] exp(-2 pi i p j / d)`` for ``j < d // 2 + 1``."""
    H = out_re.shape[0]
    for j in range(H):
        re = 0.0
        im = 0.0
        r = 0
        for p in range(k):
            wp = w[off + p]
            re += wp * ctab[r]
            im -= wp * stab[r]
            r += j
            if r >= d:
                r -= d
        out_re[j] = re
        out_im[j] = im


@njit(nogil=True, cache=True, fastmath=_FAST)
def inverse_half_spectrum(x_re, x_im, cw, d, ctab, stab, out, off):
    """``out[off+p] = sum_{j<H} cw[j] Re(x[j] exp(2 pi i p j / d))`` for ``p < d``.

    With ``cw = c_j / d`` this is the inverse real DFT of the half spectrum ``x``.
    """
    H = x_re.shape[0]
    for p in range(d):
        acc = 0.0
        r = 0
        for j in range(H):
            acc += cw[j] * (x_re[j] * ctab[r] - x_im[j] * stab[r])
            r += p
            if r >= d:
                r -= d
        out[off + p] = acc


@njit(nogil=True, cache=True)
def write_time_domain(theta, spec, ksizes, offsets, cw, d, ctab, stab, out):
    """Time-domain parameters into ``out``: partial layers from ``theta``, full from ``spec``."""
    L = ksizes.shape[0]
    for layer in range(L):
        off = offsets[layer]
        k = ksizes[layer]
        if k == d:
            inverse_half_spectrum(spec[layer, 0], spec[layer, 1], cw, d, ctab, stab, out, off)
        else:
            for p in range(k):
                out[off + p] = theta[off + p]


@njit(nogil=True, cache=True, fastmath=_FAST, inline="always")
def conv_products(spec, beta_re, beta_im, pre_re, pre_im, b, cw, nI):
    """Prefix products ``pre[l] = prod_{k<l} w_hat_k`` (``1 <= l < L``; ``pre[0] = 1`` is not
    stored), ``beta_hat = prod_l w_hat_l`` (Lemma 3) and the real vector ``b`` with
    ``b[j] = cw[j] Re beta_hat[j]`` (``j < H``), ``b[H-1+j] = cw[j] Im beta_hat[j]``
    (``1 <= j <= nI``) that :func:`predictor_step` multiplies with the Fourier data rows."""
    L = spec.shape[0]
    H = beta_re.shape[0]
    if L == 1:
        for j in range(H):
            beta_re[j] = spec[0, 0, j]
            beta_im[j] = spec[0, 1, j]
    else:
        for j in range(H):
            pre_re[1, j] = spec[0, 0, j]
            pre_im[1, j] = spec[0, 1, j]
        for layer in range(2, L):
            for j in range(H):
                ar = pre_re[layer - 1, j]
                ai = pre_im[layer - 1, j]
                wr = spec[layer - 1, 0, j]
                wi = spec[layer - 1, 1, j]
                pre_re[layer, j] = ar * wr - ai * wi
                pre_im[layer, j] = ar * wi + ai * wr
        for j in range(H):
            ar = pre_re[L - 1, j]
            ai = pre_im[L - 1, j]
            wr = spec[L - 1, 0, j]
            wi = spec[L - 1, 1, j]
            beta_re[j] = ar * wr - ai * wi
            beta_im[j] = ar * wi + ai * wr
    for j in range(H):
        b[j] = cw[j] * beta_re[j]
    for j in range(1, nI + 1):
        b[H - 1 + j] = cw[j] * beta_im[j]


@njit(nogil=True, cache=True, fastmath=_FAST, inline="always")
def conv_gradients(spec, Gv, G_re, G_im, pre_re, pre_im, suf_re, suf_im, upd, cw, nI, ksizes):
    """``upd[l] = G_hat conj(P_l)`` with ``P_l = prod_{k != l} w_hat_k = pre[l] suf_l`` and the
    running suffix ``suf_l = prod_{k>l} w_hat_k``; ``G_hat`` is unpacked from the output ``Gv``
    of :func:`predictor_step`. The factors equal to 1 (``pre[0]``, ``suf_{L-1}``) are skipped.

    Returns ``sum_j cw[j] |upd[l, j]|^2 = ||g_l||^2`` (Parseval) summed over the full-width
    layers; the short layers' norms come from :func:`partial_gradient`.
    """
    L = spec.shape[0]
    H = suf_re.shape[0]
    d = ksizes[L - 1]
    for j in range(H):
        G_re[j] = Gv[j]
        G_im[j] = 0.0
    for j in range(1, nI + 1):
        G_im[j] = Gv[H - 1 + j]
    n2 = 0.0
    for layer in range(L - 1, -1, -1):
        acc = 0.0
        if layer == L - 1:
            if L == 1:
                for j in range(H):
                    ur = G_re[j]
                    ui = G_im[j]
                    upd[layer, 0, j] = ur
                    upd[layer, 1, j] = ui
                    acc += cw[j] * (ur * ur + ui * ui)
            else:
                for j in range(H):
                    pr = pre_re[layer, j]
                    pi = pre_im[layer, j]
                    gr = G_re[j]
                    gi = G_im[j]
                    ur = gr * pr + gi * pi  # G_hat conj(P)
                    ui = gi * pr - gr * pi
                    upd[layer, 0, j] = ur
                    upd[layer, 1, j] = ui
                    acc += cw[j] * (ur * ur + ui * ui)
                for j in range(H):
                    suf_re[j] = spec[layer, 0, j]
                    suf_im[j] = spec[layer, 1, j]
        elif layer == 0:
            for j in range(H):
                pr = suf_re[j]
                pi = suf_im[j]
                gr = G_re[j]
                gi = G_im[j]
                ur = gr * pr + gi * pi
                ui = gi * pr - gr * pi
                upd[layer, 0, j] = ur
                upd[layer, 1, j] = ui
                acc += cw[j] * (ur * ur + ui * ui)
        else:
            for j in range(H):
                ar = pre_re[layer, j]
                ai = pre_im[layer, j]
                sr = suf_re[j]
                si = suf_im[j]
                pr = ar * sr - ai * si
                pi = ar * si + ai * sr
                gr = G_re[j]
                gi = G_im[j]
                ur = gr * pr + gi * pi
                ui = gi * pr - gr * pi
                upd[layer, 0, j] = ur
                upd[layer, 1, j] = ui
                acc += cw[j] * (ur * ur + ui * ui)
                wr = spec[layer, 0, j]
                wi = spec[layer, 1, j]
                suf_re[j] = sr * wr - si * wi
                suf_im[j] = sr * wi + si * wr
        if ksizes[layer] == d:
            n2 += acc
    return n2


@njit(nogil=True, cache=True, fastmath=_FAST, inline="always")
def partial_spectrum(theta, off, k, PC, PS, out_re, out_im):
    """Spectrum of a short filter from the tables ``PC[p, j] = cos(2 pi p j / d)``, ``PS`` sin."""
    H = out_re.shape[0]
    for j in range(H):
        out_re[j] = 0.0
        out_im[j] = 0.0
    for p in range(k):
        wp = theta[off + p]
        for j in range(H):
            out_re[j] += wp * PC[p, j]
            out_im[j] -= wp * PS[p, j]


@njit(nogil=True, cache=True, fastmath=_FAST, inline="always")
def partial_gradient(u_re, u_im, cw, k, PC, PS, g, off):
    """``g[off+p] = sum_j cw[j] (Re u[j] cos - Im u[j] sin)(2 pi p j / d)``; returns ``||g||^2``."""
    H = u_re.shape[0]
    n2 = 0.0
    for p in range(k):
        acc = 0.0
        for j in range(H):
            acc += cw[j] * (u_re[j] * PC[p, j] - u_im[j] * PS[p, j])
        g[off + p] = acc
        n2 += acc * acc
    return n2


@njit(nogil=True, cache=True)
def _finish(theta, spec, ksizes, offsets, cw, d, ctab, stab, status, step):
    write_time_domain(theta, spec, ksizes, offsets, cw, d, ctab, stab, theta)
    return status, step


@njit(nogil=True, cache=True)
def _rescale_conv(theta, spec, ksizes, offsets, d, t2, scale):
    """``_numba_models.rescale`` for the Fourier-domain state (spectra of the full-width
    layers, time-domain small filters); ``t2`` is ``||theta_s||**2`` (Parseval)."""
    hi = 2.0 ** (2 * RESCALE_BITS)
    if not t2 < np.inf:
        return  # inf or NaN: the divergence test of the next step reports it
    while t2 > hi or (scale[0] > 0 and t2 < 1.0 / hi):
        shift = -RESCALE_BITS if t2 > hi else RESCALE_BITS
        f = 2.0**shift
        for layer in range(ksizes.shape[0]):
            if ksizes[layer] == d:
                for r in range(2):
                    for j in range(spec.shape[2]):
                        spec[layer, r, j] *= f
            else:
                for p in range(ksizes[layer]):
                    theta[offsets[layer] + p] *= f
        scale[0] -= shift
        t2 *= f * f


@njit(nogil=True, cache=True)
def _two_sum_add(x, lo, i, delta):
    """``x[i] += delta`` with Neumaier compensation in ``lo[i]``."""
    u = delta + lo[i]
    s = x[i] + u
    if abs(x[i]) >= abs(u):
        lo[i] = (x[i] - s) + u
    else:
        lo[i] = (u - s) + x[i]
    x[i] = s


@njit(nogil=True, cache=True)
def gd_convolutional(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
                     floor, scale, rec_scale, ZF, ksizes, spec, use_spec, lo_spec,
                     lo_theta):  # fmt: skip
    """GD on a linear circular convolutional network (Gunasekar eq. 3, Yun eq. 12).

    Same steps as ``_reference.gd_model`` with the time-domain predictor and VJP of
    ``fastbias.models.convolutional.Convolutional``; see the module docstring for the
    Fourier-domain arithmetic.

    Parameters
    ----------
    Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor
        As in ``_reference.gd_model`` (``Z`` is used for its shape only). ``theta`` holds the
        time-domain filters ``w_1 (k_1), ..., w_L (d)`` one after another.
    scale, rec_scale : int64 arrays
        ``theta = 2**scale[0] * theta_s`` (``theta`` holds ``theta_s``) and the exponents of
        the recorded rows, as in ``_numba_models.gd_diagonal``.
    ZF : (d, N) float64
        ``_fft.real_fourier_rows(Z)``: the data's half spectra, computed once per run.
    ksizes : (L,) int64
        Filter lengths ``k_l`` (``k_L = d``).
    spec : (L, 2, d // 2 + 1) float64
        Real and imaginary half spectra of the full-width layers; kernel state kept between
        calls (slots of layers with ``k_l < d`` are scratch).
    use_spec : bool
        True: ``spec`` already holds the spectra of the full-width layers of ``theta`` (the
        caller checked that ``theta`` is what the previous call wrote); False: compute them
        from ``theta``.
    lo_spec, lo_theta : float64 arrays shaped like ``spec`` and ``theta``, or empty
        Compensation terms (``precision="compensated"``): the updates of the spectra and of
        the short filters are summed with Neumaier compensation. This kernel is compiled
        without fastmath so the two-sum survives (its helpers keep theirs).
    """
    comp = lo_theta.shape[0] > 0
    d = ZF.shape[0]
    N = ZF.shape[1]
    L = ksizes.shape[0]
    H = d // 2 + 1
    nI = d - H
    offsets = np.zeros(L, dtype=np.int64)
    for layer in range(1, L):
        offsets[layer] = offsets[layer - 1] + ksizes[layer - 1]
    ctab, stab = twiddles(d)
    cw = np.empty(H)
    for j in range(H):
        cw[j] = (1.0 if (j == 0 or 2 * j == d) else 2.0) / d
    kmax = 0
    for layer in range(L):
        if ksizes[layer] < d and ksizes[layer] > kmax:
            kmax = ksizes[layer]
    PC = np.empty((kmax, H))
    PS = np.empty((kmax, H))
    for p in range(kmax):
        r = 0
        for j in range(H):
            PC[p, j] = ctab[r]
            PS[p, j] = stab[r]
            r += p
            if r >= d:
                r -= d
    if not use_spec:
        for layer in range(L):
            if ksizes[layer] == d:
                half_spectrum(
                    theta, offsets[layer], d, d, ctab, stab, spec[layer, 0], spec[layer, 1]
                )

    m = np.empty(N)
    ubuf = np.empty(N)
    ubits = ubuf.view(np.int64)
    a = np.empty(N)
    Gv = np.empty(d)
    b = np.empty(d)
    beta_re = np.empty(H)
    beta_im = np.empty(H)
    pre_re = np.empty((L, H))
    pre_im = np.empty((L, H))
    suf_re = np.empty(H)
    G_re = np.empty(H)
    G_im = np.empty(H)
    suf_im = np.empty(H)
    upd = np.empty((L, 2, H))
    g = np.empty(theta.shape[0])
    k = 0
    K = rec_steps.shape[0]
    for t in range(step0, step0 + n_steps):
        for layer in range(L):
            if ksizes[layer] < d:
                partial_spectrum(
                    theta, offsets[layer], ksizes[layer], PC, PS, spec[layer, 0], spec[layer, 1]
                )
        conv_products(spec, beta_re, beta_im, pre_re, pre_im, b, cw, nI)
        ok, log_scale, lsum = predictor_step_scaled(
            ZF, b, targets, loss, rule, floor, m, ubuf, ubits, a, Gv, scale[0] * L
        )
        if not ok:
            return _finish(theta, spec, ksizes, offsets, cw, d, ctab, stab, STATUS_DIVERGED, t)
        n2 = conv_gradients(
            spec, Gv, G_re, G_im, pre_re, pre_im, suf_re, suf_im, upd, cw, nI, ksizes
        )
        for layer in range(L):
            if ksizes[layer] < d:
                n2 += partial_gradient(
                    upd[layer, 0], upd[layer, 1], cw, ksizes[layer], PC, PS, g, offsets[layer]
                )
        if not n2 < np.inf:
            return _finish(theta, spec, ksizes, offsets, cw, d, ctab, stab, STATUS_DIVERGED, t)
        c = step_coefficient(lr, rule, log_scale, lsum, n2, scale[0], L)
        t2 = 0.0
        for layer in range(L):
            off = offsets[layer]
            if ksizes[layer] == d:
                for j in range(H):
                    if comp:
                        _two_sum_add(spec[layer, 0], lo_spec[layer, 0], j, c * upd[layer, 0, j])
                        _two_sum_add(spec[layer, 1], lo_spec[layer, 1], j, c * upd[layer, 1, j])
                    else:
                        spec[layer, 0, j] += c * upd[layer, 0, j]
                        spec[layer, 1, j] += c * upd[layer, 1, j]
                    t2 += cw[j] * (spec[layer, 0, j] ** 2 + spec[layer, 1, j] ** 2)
            else:
                for p in range(ksizes[layer]):
                    if comp:
                        _two_sum_add(theta, lo_theta, off + p, c * g[off + p])
                    else:
                        theta[off + p] += c * g[off + p]
                    t2 += theta[off + p] ** 2
        before = scale[0]
        _rescale_conv(theta, spec, ksizes, offsets, d, t2, scale)
        if comp and scale[0] != before:
            f = 2.0 ** (before - scale[0])
            lo_spec *= f
            lo_theta *= f
        if k < K and rec_steps[k] == t + 1:
            write_time_domain(theta, spec, ksizes, offsets, cw, d, ctab, stab, rec_theta[k])
            rec_scale[k] = scale[0]
            k += 1
    return _finish(theta, spec, ksizes, offsets, cw, d, ctab, stab, STATUS_OK, step0 + n_steps)
