"""What gradient flow converges to in underdetermined regression (Yun et al. 2021, Section 5).

* Lemma 4: the ODE ``p' = p^{L-2} q, q' = p^{L-1}, p(0) = 1, q(0) = 0`` on its maximal interval
  ``(-c_L, c_L)``, ``h_L = p^{L-1} q`` and ``H_L(t) = int_0^t h_L^{-1}`` (:func:`h_L`,
  :func:`h_L_inverse`, :func:`H_L`, :func:`lemma4_solution`, :func:`lemma4_radius`).
* Theorem 5: for an orthogonally decomposable network (Assumption 1, real ``S``) initialized at
  ``v_l(0) = alpha U_l eta_bar`` (``l < L``), ``v_L(0) = 0``, the limit of ``beta(t)`` is
  ``S^T rho`` with ``rho`` the minimizer of ``Q_{L,alpha,eta_bar}(rho)`` subject to
  ``X S^T rho = y`` (:func:`q_minimizer`, :func:`q_norm`); Corollaries 5 (diagonal), 6 (full
  width convolutional, even data) and 7 (deep matrix sensing with commuting symmetric sensors).
* Theorem 6: closed-form limit points of a 2-layer linear tensor network fitted to one data
  point (:func:`two_layer_limit_point`).

How Lemma 4 is evaluated
------------------------
The ODE conserves ``p^2 - q^2 = 1`` (``d/dt (p^2 - q^2) = 2 p^{L-1} q - 2 q p^{L-1} = 0``), so
with ``T = q`` (``p = sqrt(1 + T^2)``) and ``dt = dq / p^{L-1}``:

    t(T) = int_0^T (1 + s^2)^{-(L-1)/2} ds,    h_L = T (1 + T^2)^{(L-1)/2},
    G_L(t) := int_0^t h_L = q^2 / 2,             h_L'(t) = (1 + T^2)^{L-2} (1 + L T^2),

and, by the Legendre identity, ``H_L(tau) = tau h_L^{-1}(tau) - G_L(h_L^{-1}(tau))``. With
``T = tan(phi)``, ``t(T) = int_0^phi cos^{L-3}`` and the radius is the Wallis integral
``c_L = int_0^{pi/2} cos^{L-3} = sqrt(pi) Gamma((L-2)/2) / (2 Gamma((L-1)/2))`` (``pi/2`` for
L = 3, ``1`` for L = 4, infinite for L = 2). For ``L = 2``: ``p = cosh, q = sinh``,
``h_2 = sinh(2t)/2``, ``h_2^{-1} = asinh(2t)/2``; for ``L = 3``: ``p = sec, q = tan``.

Every value is computed in a compiled kernel (numba) through ``T``:

* ``h_L^{-1}(t)``, ``H_L(t)``: ``T`` solves ``T (1 + T^2)^{(L-1)/2} = |t|``, started from a
  per-L table of ``log T`` against ``log t`` (cubic Hermite, error ~1e-7) and finished by two
  Newton steps; ``t(T)`` by the Wallis recursion, whose terms are all positive.
* ``h_L(u)``, ``h_L'(u)``: for ``u <= t(sqrt 3)``, Halley's method on ``t(T) = u`` from
  ``tan(u)``; closer to ``c_L``, ``delta = c_L - u`` (``c_L`` held in double-double) and
  ``s = cos(phi)`` solves ``A(s) = delta`` for the tail
  ``A(s) = int_0^s x^{L-3} / sqrt(1 - x^2) dx`` (a power series), so ``h_L`` stays accurate
  up to the edge of its domain.

Relative accuracy is a few ulps where ``h_L`` is well conditioned (tests: 40-digit mpmath and
scipy's ``solve_ivp`` on the ODE itself); near ``c_L`` it is limited by the conditioning of
``h_L`` there. ``H_L`` on 10^6 points takes 60-110 ms (bench/bench_regression_refs.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit

from fastbias._validation import check_positive, check_positive_int, check_X_targets
from fastbias.exceptions import SolverError

__all__ = [
    "lemma4_radius",
    "lemma4_solution",
    "h_L",
    "h_L_inverse",
    "H_L",
    "q_norm",
    "QMinimizer",
    "q_minimizer",
    "diagonal_regression_limit",
    "conv_even_regression_limit",
    "MatrixSensingLimit",
    "matrix_sensing_limit",
    "TwoLayerLimitPoint",
    "two_layer_limit_point",
]

# ----------------------------------------------------------------------------------------
# Lemma 4: compiled scalar kernels
# ----------------------------------------------------------------------------------------

# Branch point: below s = cos(phi) = 1/2 the tail series converges like 4^-k.
_S0 = 0.5
_T_SPLIT = math.sqrt(1.0 / (_S0 * _S0) - 1.0)  # T = tan(phi) at cos(phi) = 1/2, i.e. sqrt(3)
_PI2_HI = 1.5707963267948966
_PI2_LO = 6.123233995736766e-17  # pi/2 = _PI2_HI + _PI2_LO to ~1e-33
_MAX_NEWTON = 100


@njit(nogil=True, cache=True)
def _tail(s, n):
    """``A_n(s) = int_0^s x^n / sqrt(1 - x^2) dx`` for ``0 <= s <= 1/2``, as a power series.

    ``1/sqrt(1-x^2) = sum_k C_k x^{2k}`` with ``C_k = binom(2k, k) / 4^k``: all terms positive,
    ratio below ``s^2 <= 1/4``.
    """
    if s == 0.0:
        return 0.0
    s2 = s * s
    term = s ** (n + 1)
    ck = 1.0
    total = 0.0
    k = 0
    while True:
        add = ck * term / (n + 2 * k + 1)
        total += add
        if add <= 1e-17 * total or k > 200:
            break
        k += 1
        ck *= (2.0 * k - 1.0) / (2.0 * k)
        term *= s2
    return total


@njit(nogil=True, cache=True)
def _wallis(T, n):
    """``int_0^phi cos^n``, ``phi = atan(T)``, by ``I_m = cos^{m-1} sin / m + (m-1)/m I_{m-2}``.

    All terms are positive, so the relative error is a few ulps for every ``T``.
    """
    p = math.sqrt(1.0 + T * T)
    s = 1.0 / p
    sig = T / p
    if n % 2 == 0:
        val = math.atan(T)
        m = 2
        spow = s  # s^{m-1}
    else:
        val = sig
        m = 3
        spow = s * s
    while m <= n:
        val = spow * sig / m + (m - 1.0) / m * val
        spow *= s * s
        m += 2
    return val


@njit(nogil=True, cache=True)
def _halley(F, d1, d2):
    """Halley's step ``F / d1 / (1 - F d2 / (2 d1^2))``, or Newton's when that is unsafe."""
    step = F / d1
    den = 1.0 - 0.5 * step * d2 / d1
    if den > 0.5:
        step /= den
    return step


@njit(nogil=True, cache=True)
def _T_of_h(t, L):
    """``T >= 0`` with ``T (1 + T^2)^{(L-1)/2} = t`` (``t >= 0``, ``L >= 3``).

    Halley's method on ``F(y) = y + (L-1)/2 log1p(e^{2y}) - log t``, ``y = log T`` (F is
    convex with slope between 1 and L), started from one fixed-point sweep of the small-t
    (``y = log t - (L-1)/2 log1p(T^2)``) or large-t (``L y = log t - (L-1)/2 log1p(T^-2)``)
    form. Converges in 2-3 steps; the last step is taken once a step is below 1e-6, after
    which the cubic convergence leaves an error below rounding.
    """
    if t == 0.0:
        return 0.0
    lt = math.log(t)
    half = 0.5 * (L - 1.0)
    if t <= 1.0:
        y = lt - half * math.log1p(t * t)
    else:
        y = (lt - half * math.log1p(math.exp(-2.0 * lt / L))) / L
    tol = 1e-6 * max(1.0, abs(lt))
    for _ in range(_MAX_NEWTON):
        T2 = math.exp(2.0 * y)
        sg = T2 / (1.0 + T2)
        F = y + half * math.log1p(T2) - lt
        d1 = 1.0 + (L - 1.0) * sg
        d2 = 2.0 * (L - 1.0) * sg * (1.0 - sg)
        step = _halley(F, d1, d2)
        y -= step
        if abs(step) <= tol:
            break
    return math.exp(y)


@njit(nogil=True, cache=True)
def _s_of_tail(delta, n):
    """``s in (0, 1/2]`` with ``A_n(s) = delta``: Halley on ``log A`` against ``log s``.

    ``log A_n`` is convex in ``log s`` (a power series with positive coefficients); the start
    inverts the first two terms of the series.
    """
    if delta <= 0.0:
        return 0.0
    s = ((n + 1.0) * delta) ** (1.0 / (n + 1.0))
    if s > _S0:
        s = _S0
    s = s * (1.0 + (n + 1.0) * s * s / (2.0 * (n + 3.0))) ** (-1.0 / (n + 1.0))
    ld = math.log(delta)
    y = math.log(s)
    tol = 1e-6 * max(1.0, abs(ld))
    for _ in range(_MAX_NEWTON):
        s = math.exp(y)
        A = _tail(s, n)
        q = math.sqrt((1.0 - s) * (1.0 + s))
        sn = s**n
        dA = sn / q
        ddA = (n * (sn / s) if n > 0 else 0.0) / q + sn * s / (q * q * q)
        F = math.log(A) - ld
        D = s * dA / A
        dD = s * ((dA + s * ddA) / A - s * dA * dA / (A * A))
        step = _halley(F, D, dD)
        y -= step
        if abs(step) <= tol:
            break
    return math.exp(y)


@njit(nogil=True, cache=True)
def _T_of_t_lower(u, n):
    """``T`` with ``t(T) = u`` on the lower branch ``u <= t(sqrt 3)``.

    Halley's method on the concave increasing ``t(T) - u`` from ``T0 = tan(u)``
    (``t(T) <= atan(T)`` puts it left of the root; exact for L = 3).
    """
    T = math.tan(u)
    for _ in range(_MAX_NEWTON):
        F = _wallis(T, n) - u
        w = 1.0 + T * T
        d1 = w ** (-0.5 * (n + 2.0))
        d2 = -(n + 2.0) * T * d1 / w
        step = _halley(F, d1, d2)
        T -= step
        if abs(step) <= 1e-6 * T:
            break
    return T


@njit(nogil=True, cache=True)
def _lemma4_forward_kernel(u, L, c_hi, c_lo, u_split, h, dh, G):
    """``h_L(u)``, ``h_L'(u)`` and ``G_L(u) = int_0^u h_L = q_L(u)^2 / 2`` for every ``u``.

    Inputs trusted: float64 arrays of equal size, ``|u| < c_L``; outputs preallocated.
    """
    n = L - 3
    for i in range(u.size):
        ui = u[i]
        a = abs(ui)
        if L == 2:
            if a > 354.0:  # h_2 = sinh(2a)/2 beyond the float64 range
                h[i] = math.copysign(math.inf, ui)
                dh[i] = math.inf
                G[i] = math.inf
                continue
            sh = math.sinh(a)
            h[i] = math.copysign(0.5 * math.sinh(2.0 * a), ui)
            dh[i] = math.cosh(2.0 * a)
            G[i] = 0.5 * sh * sh
            continue
        if a <= u_split:
            T = _T_of_t_lower(a, n)
            T2 = T * T
            h[i] = math.copysign(T * (1.0 + T2) ** (0.5 * (L - 1)), ui)
            dh[i] = (1.0 + T2) ** (L - 2) * (1.0 + L * T2)
            G[i] = 0.5 * T2
        else:
            delta = (c_hi - a) + c_lo
            s = _s_of_tail(delta, n)
            sig = math.sqrt((1.0 - s) * (1.0 + s))
            T = sig / s
            h[i] = math.copysign(sig / s**L, ui)
            dh[i] = (1.0 + L * T * T) / s ** (2 * L - 4)
            G[i] = 0.5 * T * T


@njit(nogil=True, cache=True)
def _half_power(w, k2):
    """``w^{k2/2}`` for an integer ``k2 >= 0`` by multiplication (and one sqrt if odd)."""
    out = 1.0
    for _ in range(k2 // 2):
        out *= w
    if k2 % 2 == 1:
        out *= math.sqrt(w)
    return out


@njit(nogil=True, cache=True)
def _T_of_h_fast(t, L, z0, dz, ytab, mtab):
    """``T`` with ``T (1 + T^2)^{(L-1)/2} = t``: tabulated start, then two Newton steps.

    ``y = log T`` against ``z = log t`` is tabulated (values and slopes) on a uniform grid and
    interpolated by cubic Hermite (error ~1e-7); two Newton steps on
    ``f(T) = T w^{(L-1)/2} - t``, ``w = 1 + T^2``, then reach rounding level (quadratic
    convergence). Outside the table, the asymptotic forms ``y ~ z`` and ``y ~ z / L`` are
    already that accurate. Very large ``t`` falls back to :func:`_T_of_h` (overflow).
    """
    if t == 0.0:
        return 0.0
    if t > 1e290:
        return _T_of_h(t, L)
    z = math.log(t)
    k = int(math.floor((z - z0) / dz))
    if k < 0:
        y = z - 0.5 * (L - 1.0) * t * t
    elif k >= ytab.size - 1:
        y = (z - 0.5 * (L - 1.0) * math.exp(-2.0 * z / L)) / L
    else:
        tau = (z - z0) / dz - k
        tau2 = tau * tau
        tau3 = tau2 * tau
        y = (
            (2.0 * tau3 - 3.0 * tau2 + 1.0) * ytab[k]
            + (tau3 - 2.0 * tau2 + tau) * dz * mtab[k]
            + (-2.0 * tau3 + 3.0 * tau2) * ytab[k + 1]
            + (tau3 - tau2) * dz * mtab[k + 1]
        )
    T = math.exp(y)
    for _ in range(2):
        w = 1.0 + T * T
        P = _half_power(w, L - 3)
        T -= (T * w * P - t) / (P * (1.0 + L * T * T))
    return T


@njit(nogil=True, cache=True)
def _lemma4_inverse_kernel(t, L, z0, dz, ytab, mtab, u, H, du, T_out):
    """``u = h_L^{-1}(t)``, ``H_L(t)``, ``du = 1 / h_L'(u)`` and ``T = q_L(u)`` for every ``t``.

    Inputs trusted: finite float64 arrays of equal size, the start table of
    :func:`_start_table`; outputs preallocated.
    """
    n = L - 3
    for i in range(t.size):
        ti = t[i]
        a = abs(ti)
        if L == 2:
            r = math.hypot(1.0, 2.0 * a)
            ua = 0.5 * math.asinh(2.0 * a)
            u[i] = math.copysign(ua, ti)
            H[i] = a * ua - a * (a / (r + 1.0))
            du[i] = 1.0 / r
            T_out[i] = math.copysign(math.sinh(ua), ti)
            continue
        T = _T_of_h_fast(a, L, z0, dz, ytab, mtab)
        ua = _wallis(T, n)  # all terms positive: accurate for every T
        w = 1.0 + T * T
        u[i] = math.copysign(ua, ti)
        H[i] = a * ua - 0.5 * T * T
        du[i] = 1.0 / (_half_power(w, 2 * L - 4) * (1.0 + L * T * T))
        T_out[i] = math.copysign(T, ti)


@njit(nogil=True, cache=True)
def _fill_start_table(L, z0, dz, ytab, mtab):
    """``y = log T(e^z)`` and ``dy/dz = 1 / (1 + (L-1) T^2/(1+T^2))`` on the grid."""
    for k in range(ytab.size):
        T = _T_of_h(math.exp(z0 + k * dz), L)
        ytab[k] = math.log(T)
        sg = T * T / (1.0 + T * T)
        mtab[k] = 1.0 / (1.0 + (L - 1.0) * sg)


# ----------------------------------------------------------------------------------------
# Lemma 4: public functions
# ----------------------------------------------------------------------------------------


def _check_depth(L: Any) -> int:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2:
        raise ValueError(f"L must be an integer >= 2 (the depth of Lemma 4); got {L!r}.")
    return int(L)


@lru_cache(maxsize=64)
def _radius_dd(L: int) -> tuple[float, float, float]:
    """``c_L`` as a double-double ``(hi, lo)`` and the branch point ``t(sqrt 3)``."""
    if L == 2:
        return math.inf, 0.0, math.inf
    n = L - 3
    # Wallis: W_0 = pi/2, W_1 = 1, W_m = (m-1)/m W_{m-2}.
    r = Fraction(1)
    m = n
    while m >= 2:
        r *= Fraction(m - 1, m)
        m -= 2
    exact = r * (Fraction(_PI2_HI) + Fraction(_PI2_LO)) if n % 2 == 0 else r
    hi = float(exact)
    lo = float(exact - Fraction(hi))
    u_split = float(_wallis(_T_SPLIT, n))
    return hi, lo, u_split


def lemma4_radius(L: int) -> float:
    """Radius ``c_L`` of the maximal interval ``(-c_L, c_L)`` of Lemma 4 (Yun et al. 2021).

    ``c_L = int_0^{pi/2} cos^{L-3}(theta) d theta``: infinite for ``L = 2``, ``pi/2`` for
    ``L = 3``, ``1`` for ``L = 4``, ``pi/4`` for ``L = 5`` (Wallis' integrals).

    Parameters
    ----------
    L : int
        Depth, ``>= 2``.

    Returns
    -------
    float
    """
    return _radius_dd(_check_depth(L))[0]


def _as_array(x: Any, name: str) -> tuple[np.ndarray, bool]:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array of real numbers.") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; Lemma 4's functions need finite input.")
    return arr, arr.ndim == 0


def _forward(u: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h_L, h_L', G_L)`` at ``u`` (validated, inside the domain)."""
    c_hi, c_lo, u_split = _radius_dd(L)
    flat = u.ravel()
    h, dh, G = np.empty_like(flat), np.empty_like(flat), np.empty_like(flat)
    _lemma4_forward_kernel(flat, L, c_hi, c_lo, u_split, h, dh, G)
    return h.reshape(u.shape), dh.reshape(u.shape), G.reshape(u.shape)


@lru_cache(maxsize=64)
def _start_table(L: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Grid ``z0 + k dz`` of ``log t`` over ``[-20, 5L + 5]`` and ``(log T, d log T / d log t)``.

    Below ``z = -20`` the start ``y = z - (L-1) t^2 / 2`` and above ``5L + 5`` the start
    ``y = (z - (L-1)/2 e^{-2z/L}) / L`` have relative errors below 1e-8."""
    z0, dz = -20.0, 1.0 / 16.0
    size = int(math.ceil((5.0 * L + 25.0) / dz)) + 2
    ytab, mtab = np.zeros(size), np.zeros(size)
    if L >= 3:
        _fill_start_table(L, z0, dz, ytab, mtab)
    return z0, dz, ytab, mtab


def _inverse(t: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(h_L^{-1}, H_L, 1/h_L'(h_L^{-1}), q_L(h_L^{-1}))`` at ``t`` (validated)."""
    z0, dz, ytab, mtab = _start_table(L)
    flat = t.ravel()
    u, H, du, T = (np.empty_like(flat) for _ in range(4))
    _lemma4_inverse_kernel(flat, L, z0, dz, ytab, mtab, u, H, du, T)
    return u.reshape(t.shape), H.reshape(t.shape), du.reshape(t.shape), T.reshape(t.shape)


def _in_domain(u: np.ndarray, L: int) -> None:
    c = lemma4_radius(L)
    if u.size and np.max(np.abs(u)) >= c:
        bad = float(u.ravel()[np.argmax(np.abs(u.ravel()))])
        raise ValueError(
            f"h_L for L = {L} is defined on (-c_L, c_L) with c_L = {c!r} (Lemma 4: the ODE "
            f"solution blows up there); got t = {bad!r}."
        )


def _out(arr: np.ndarray, scalar: bool) -> float | np.ndarray:
    return float(arr) if scalar else arr


def lemma4_solution(t: Any, L: int) -> tuple[float | np.ndarray, float | np.ndarray]:
    """The solution ``(p_L(t), q_L(t))`` of Yun et al. (2021) Lemma 4.

    ``p' = p^{L-2} q``, ``q' = p^{L-1}``, ``p(0) = 1``, ``q(0) = 0`` on ``(-c_L, c_L)``
    (:func:`lemma4_radius`); ``p`` is even, ``q`` odd and ``p^2 - q^2 = 1``.

    Parameters
    ----------
    t : float or array_like
        Points in ``(-c_L, c_L)``.
    L : int
        Depth, ``>= 2``.

    Returns
    -------
    p, q : float or ndarray
        Same shape as ``t``.

    Raises
    ------
    ValueError
        Non-finite ``t``, ``|t| >= c_L``, or ``L < 2``.
    """
    L = _check_depth(L)
    u, scalar = _as_array(t, "t")
    _in_domain(u, L)
    _, _, G = _forward(u, L)
    q = np.copysign(np.sqrt(2.0 * G), u)
    p = np.hypot(1.0, q)
    return _out(p, scalar), _out(q, scalar)


def h_L(t: Any, L: int) -> float | np.ndarray:
    """``h_L(t) = p_L(t)^{L-1} q_L(t)`` of Yun et al. (2021) Lemma 4.

    Odd and strictly increasing on ``(-c_L, c_L)``, onto the real line; ``h_2(t) = sinh(2t)/2``
    and ``h_3(t) = sec^2(t) tan(t)``.

    Parameters
    ----------
    t : float or array_like
        Points in ``(-c_L, c_L)`` (:func:`lemma4_radius`).
    L : int
        Depth, ``>= 2``.

    Returns
    -------
    float or ndarray
        Same shape as ``t``.

    Raises
    ------
    ValueError
        Non-finite ``t``, ``|t| >= c_L``, or ``L < 2``.
    """
    L = _check_depth(L)
    u, scalar = _as_array(t, "t")
    _in_domain(u, L)
    return _out(_forward(u, L)[0], scalar)


def h_L_inverse(t: Any, L: int) -> float | np.ndarray:
    """``h_L^{-1}(t)``, the inverse of :func:`h_L` (Yun et al. 2021, Lemma 4), onto ``(-c_L, c_L)``.

    ``h_2^{-1}(t) = asinh(2t)/2``. This is ``H_L'``.

    Parameters
    ----------
    t : float or array_like
        Any finite reals.
    L : int
        Depth, ``>= 2``.

    Returns
    -------
    float or ndarray
    """
    L = _check_depth(L)
    t, scalar = _as_array(t, "t")
    return _out(_inverse(t, L)[0], scalar)


def H_L(t: Any, L: int) -> float | np.ndarray:
    """``H_L(t) = int_0^t h_L^{-1}(tau) d tau`` of Yun et al. (2021) Theorem 5.

    Even, convex, ``H_L(t) ~ t^2/2`` near 0 and ``~ c_L |t|`` for large ``|t|`` (Remark 4;
    ``~ |t| log|t| / 2`` for L = 2). Computed as ``t h_L^{-1}(t) - q_L(h_L^{-1}(t))^2 / 2``
    (Legendre identity, ``int_0^u h_L = q_L(u)^2/2``). For ``L = 2``:
    ``H_2(t) = t asinh(2t)/2 - (sqrt(1 + 4t^2) - 1)/4``.

    Parameters
    ----------
    t : float or array_like
        Any finite reals.
    L : int
        Depth, ``>= 2``.

    Returns
    -------
    float or ndarray
        Same shape as ``t``. One million points take well under 0.5 s (bench/).
    """
    L = _check_depth(L)
    t, scalar = _as_array(t, "t")
    return _out(_inverse(t, L)[1], scalar)


# ----------------------------------------------------------------------------------------
# Theorem 5: the Q-norm minimizer
# ----------------------------------------------------------------------------------------


def _check_eta(eta_bar: Any, m: int, name: str = "eta_bar") -> np.ndarray:
    eta = np.asarray(eta_bar, dtype=np.float64).ravel() if eta_bar is not None else np.ones(m)
    if eta.shape != (m,):
        raise ValueError(f"{name} must have {m} entries (one per row of S); got {eta.size}.")
    if not np.all(np.isfinite(eta)):
        raise ValueError(f"{name} contains NaN or inf.")
    if np.any(eta == 0.0):
        j = int(np.flatnonzero(eta == 0.0)[0])
        raise ValueError(
            f"{name}[{j}] = 0: Theorem 5 needs [{name}]_j^2 >= lambda > 0 for every j (a zero "
            "entry freezes that coordinate at 0 and the loss need not go to zero)."
        )
    return eta


def q_norm(rho: Any, L: int, alpha: float, eta_bar: Any = None) -> float:
    """``Q_{L,alpha,eta_bar}(rho) = alpha^2 sum_j eta_j^2 H_L(rho_j / (alpha^L |eta_j|^L))``.

    The norm-like function of Yun et al. (2021) Theorem 5 (eq. 67); convex, even in every
    coordinate, weighted L1-like as ``alpha -> 0`` and weighted L2-like as ``alpha -> inf``
    (Remark 4).

    Parameters
    ----------
    rho : array_like of shape (m,)
    L : int
        Depth, ``>= 2``.
    alpha : float
        Initialization scale, ``> 0``.
    eta_bar : array_like of shape (m,), optional
        Initial direction in singular-value space (nonzero entries); default all ones.

    Returns
    -------
    float
    """
    L = _check_depth(L)
    alpha = check_positive(alpha, "alpha")
    r, _ = _as_array(rho, "rho")
    r = r.ravel()
    eta = _check_eta(eta_bar, r.size)
    a = alpha**L * np.abs(eta) ** L
    H = _inverse(r / a, L)[1]
    return float(alpha**2 * np.sum(eta**2 * H))


@dataclass(frozen=True, eq=False)
class QMinimizer:
    """Solution of Yun et al. (2021) Theorem 5: ``min Q(rho)`` s.t. ``X S^T rho = y``.

    Attributes
    ----------
    coef : ndarray of shape (d,)
        ``z = S^T rho``: the predicted limit of the linear coefficients ``beta(t)``.
    rho : ndarray of shape (m,)
        The minimizer in singular-value space.
    dual : ndarray of shape (n,)
        ``nu`` with ``grad Q(rho) = S X^T nu`` (eq. 67's KKT conditions); in the proof
        ``nu = -int_0^inf r(tau) d tau``, the integrated residual of gradient flow.
    objective : float
        ``Q_{L,alpha,eta_bar}(rho)``.
    residual : float
        Feasibility ``||X z - y|| / max(||y||, 1e-300)``.
    stationarity : float
        ``||grad Q(rho) - S X^T nu|| / max(||grad Q(rho)||, 1e-300)``, with ``grad Q``
        evaluated independently through ``h_L^{-1}``.
    n_iter : int
        Newton iterations.
    theorem : str
    """

    coef: np.ndarray
    rho: np.ndarray
    dual: np.ndarray
    objective: float
    residual: float
    stationarity: float
    n_iter: int
    theorem: str = "Yun et al. 2021, Theorem 5"


def _reduce_constraints(Bt: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent rows of ``Bt rho = y``: ``(Bt_r, y_r, U_r)`` with ``nu = U_r nu_r``.

    Raises ValueError when ``y`` is not in the range of ``Bt`` (no interpolating solution).
    """
    U, sv, Vt = np.linalg.svd(Bt, full_matrices=False)
    tol = max(Bt.shape) * np.finfo(float).eps * (sv[0] if sv.size else 0.0)
    r = int(np.sum(sv > tol))
    if r == 0:
        raise ValueError("X S^T is zero: no linear coefficients can fit y (infeasible).")
    if r == Bt.shape[0]:
        return Bt, y, np.eye(Bt.shape[0])
    Ur = U[:, :r]
    gap = float(np.linalg.norm(y - Ur @ (Ur.T @ y)))
    if gap > 1e-10 * max(float(np.linalg.norm(y)), 1e-300):
        raise ValueError(
            f"infeasible interpolation: X S^T has rank {r} < n = {Bt.shape[0]} and y is not in "
            f"its range (distance {gap:.3e}); no coefficients satisfy X z = y exactly."
        )
    return sv[:r, None] * Vt[:r], Ur.T @ y, Ur


def q_minimizer(
    X: Any,
    y: Any,
    L: int,
    alpha: float,
    eta_bar: Any = None,
    S: Any = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
) -> QMinimizer:
    """Limit of gradient flow in regression for orthogonally decomposable networks (Theorem 5).

    Yun et al. (2021) Theorem 5: under Assumption 1 with real ``S`` (m x d) and ``U_l``, from
    ``v_l(0) = alpha U_l eta_bar`` (``l < L``) and ``v_L(0) = 0``, ``beta(t) -> S^T rho`` where

        rho = argmin Q_{L,alpha,eta_bar}(rho)  subject to  X S^T rho = y,

    ``Q_{L,alpha,eta}(rho) = alpha^2 sum_j eta_j^2 H_L(rho_j / (alpha^L |eta_j|^L))``
    (:func:`q_norm`). Diagonal networks have ``S = I`` (Corollary 5).

    Algorithm: the problem is strictly convex and its KKT conditions (proof of Theorem 5)
    read ``rho = a * h_L(b * S X^T nu)`` with ``a = alpha^L |eta|^L``,
    ``b = alpha^{L-2} |eta|^{L-2}``. Damped Newton minimizes the smooth convex dual
    ``Phi(nu) = sum_j (a_j / b_j) G_L(b_j [S X^T nu]_j) - y^T nu`` (``G_L = q_L^2 / 2``,
    ``G_L' = h_L``; a barrier at ``|b_j [S X^T nu]_j| = c_L`` for ``L >= 3``); then a few
    primal-dual Newton steps on the KKT system in ``rho`` polish the answer where
    ``h_L`` is steep (small ``alpha``). Both KKT residuals are reported.

    Parameters
    ----------
    X : array_like of shape (n, d)
    y : array_like of shape (n,)
        Regression targets.
    L : int
        Depth, ``>= 2``.
    alpha : float
        Initialization scale, ``> 0``.
    eta_bar : array_like of shape (m,), optional
        Initial direction in singular-value space, all entries nonzero; default all ones.
    S : array_like of shape (m, d), optional
        Real transform of Assumption 1; default the identity (diagonal networks).
    tol : float, default 1e-10
        Largest accepted KKT residual (feasibility and stationarity, relative).
    max_iter : int, default 500

    Returns
    -------
    QMinimizer

    Raises
    ------
    ValueError
        Bad shapes or values, a zero ``eta_bar`` entry, or infeasible ``X S^T rho = y``.
    SolverError
        The KKT residual stays above ``tol``.
    """
    X, y = check_X_targets(X, y)
    L = _check_depth(L)
    alpha = check_positive(alpha, "alpha")
    tol = check_positive(tol, "tol")
    max_iter = check_positive_int(max_iter, "max_iter")
    n, d = X.shape
    if S is None:
        S = np.eye(d)
    S = np.asarray(S)
    if np.iscomplexobj(S):
        raise ValueError(
            "S is complex; Theorem 5 needs real S and U_l (for even data with full-width "
            "convolutions use conv_even_regression_limit, Corollary 6)."
        )
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[1] != d:
        raise ValueError(f"S must have shape (m, d) with d = {d}; got {S.shape}.")
    if not np.all(np.isfinite(S)):
        raise ValueError("S contains NaN or inf.")
    m = S.shape[0]
    eta = _check_eta(eta_bar, m)

    Bt_full = X @ S.T  # (n, m): the constraint X S^T rho = y
    Bt, yr, Ur = _reduce_constraints(Bt_full, y)
    B = Bt.T
    a = alpha**L * np.abs(eta) ** L
    b = alpha ** (L - 2) * np.abs(eta) ** (L - 2)
    w = a / b
    c = lemma4_radius(L)
    ynorm = max(float(np.linalg.norm(yr)), 1e-300)

    def evaluate(nu: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        arg = b * (B @ nu)
        if np.max(np.abs(arg), initial=0.0) >= c:
            return np.inf, arg, arg, arg
        h, dh, G = _forward(arg, L)
        phi = float(np.sum(w * G) - yr @ nu)
        return phi, a * h, a * b * dh, arg

    nu = np.zeros(Bt.shape[0])
    phi, rho, curv, _ = evaluate(nu)
    it = 0
    best_g, stalls = np.inf, 0
    for it in range(1, max_iter + 1):  # noqa: B007
        grad = Bt @ rho - yr
        gn = float(np.linalg.norm(grad))
        if gn <= 1e-3 * tol * ynorm:
            break
        if gn < 0.5 * best_g:
            best_g, stalls = gn, 0
        else:
            stalls += 1
            if stalls >= 4 and best_g <= 1e-6 * ynorm:
                break  # at the rounding floor of the dual; the primal polish finishes
        Hm = Bt @ (curv[:, None] * B)
        try:
            step = -np.linalg.solve(Hm, grad)
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(Hm, grad, rcond=None)[0]
        slope = float(grad @ step)
        if not slope < 0:
            break
        t = 1.0
        if L >= 3:  # stay inside the domain |b * (B nu)| < c
            darg = b * (B @ step)
            arg0 = b * (B @ nu)
            with np.errstate(divide="ignore", invalid="ignore"):
                room = np.where(darg != 0, (np.sign(darg) * c - arg0) / darg, np.inf)
            t = min(1.0, 0.999 * float(np.min(room)))
        accepted = False
        gnorm = float(np.linalg.norm(grad))
        # Near the optimum the decrease -slope/2 is below the rounding of Phi; there the
        # full (domain-clipped) Newton step is accepted if it reduces the gradient.
        flat = -slope <= 1e-11 * max(1.0, abs(phi))
        while t > 1e-20:
            phi_new, rho_new, curv_new, _ = evaluate(nu + t * step)
            if phi_new <= phi + 1e-4 * t * slope:
                accepted = True
                break
            if flat and np.isfinite(phi_new):
                accepted = float(np.linalg.norm(Bt @ rho_new - yr)) < gnorm
                break
            t *= 0.5
        if not accepted:
            break  # rounding floor of the dual: the primal polish takes over
        nu = nu + t * step
        phi, rho, curv = phi_new, rho_new, curv_new

    rho, nu = _primal_polish(rho, nu, B, Bt, yr, a, b, L)
    coef = S.T @ rho
    residual = float(np.linalg.norm(X @ coef - y) / max(float(np.linalg.norm(y)), 1e-300))
    gQ = _inverse(rho / a, L)[0] / b
    stat = float(np.linalg.norm(gQ - B @ nu) / max(float(np.linalg.norm(gQ)), 1e-300))
    if max(residual, stat) > tol:
        raise SolverError(
            f"q_minimizer stopped with feasibility residual {residual:.2e} and stationarity "
            f"residual {stat:.2e} (tol={tol:.1e}) for L = {L}, alpha = {alpha:g}. With "
            f"alpha^L min|eta|^L = {float(a.min()):.1e} the saturated coordinates need "
            "h_L^{-1} within rounding of c_L, beyond double precision; use a larger alpha (the "
            "alpha -> 0 limit is the weighted L1 problem of Remark 4) or a larger tol."
        )
    objective = float(alpha**2 * np.sum(eta**2 * _inverse(rho / a, L)[1]))
    return QMinimizer(
        coef=coef,
        rho=rho,
        dual=Ur @ nu,
        objective=objective,
        residual=residual,
        stationarity=stat,
        n_iter=int(it),
    )


def _primal_polish(
    rho: np.ndarray,
    nu: np.ndarray,
    B: np.ndarray,
    Bt: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    L: int,
    steps: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Infeasible-start Newton on the KKT system ``grad Q(rho) = B nu``, ``B^T rho = y``.

    ``grad Q = h_L^{-1}(rho / a) / b`` and ``diag Hessian = (h_L^{-1})'(rho / a) / (a b)``;
    each step solves the KKT system through the Schur complement ``B^T D^{-1} B`` and
    backtracks on the residual norm (Boyd & Vandenberghe, Section 10.3.2). Works in ``rho``,
    where the answer is well represented even when ``h_L`` is extremely steep at the dual
    point (very small alpha). Returns the best iterate by the combined relative residual.
    """
    ynorm = max(float(np.linalg.norm(y)), 1e-300)
    gscale = float(np.linalg.norm(_inverse(rho / a, L)[0] / b))
    gscale = max(gscale, float(np.linalg.norm(B @ nu)))
    if not gscale > 0:
        gscale = float(np.linalg.norm(lemma4_radius(L) / b)) if L >= 3 else 1.0

    def kkt(
        r: np.ndarray, v: np.ndarray
    ) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
        u, _, du, _ = _inverse(r / a, L)
        g = u / b
        e = g - B @ v
        rp = y - Bt @ r
        gnorm = max(float(np.linalg.norm(g)), 1e-300)
        score = max(float(np.linalg.norm(e)) / gnorm, float(np.linalg.norm(rp)) / ynorm)
        merit = float(np.hypot(np.linalg.norm(e) / gscale, np.linalg.norm(rp) / ynorm))
        return score, merit, e, rp, du / (a * b)

    score, merit, e, rp, D = kkt(rho, nu)
    best, best_score = (rho, nu), score
    for _ in range(steps):
        if best_score <= 1e-15:
            break
        Dinv = 1.0 / D
        K = Bt @ (Dinv[:, None] * B)
        rhs = -rp - Bt @ (Dinv * e)
        try:
            dnu = np.linalg.solve(K, rhs)
        except np.linalg.LinAlgError:
            dnu = np.linalg.lstsq(K, rhs, rcond=None)[0]
        drho = -Dinv * (e + B @ dnu)
        t = 1.0
        while t > 1e-12:
            cand = kkt(rho + t * drho, nu + t * dnu)
            if cand[1] <= (1.0 - 0.01 * t) * merit:
                break
            t *= 0.5
        else:
            break
        rho, nu = rho + t * drho, nu + t * dnu
        score, merit, e, rp, D = cand
        if score < best_score:
            best, best_score = (rho, nu), score
    return best


# ----------------------------------------------------------------------------------------
# Corollaries 5, 6, 7
# ----------------------------------------------------------------------------------------


def diagonal_regression_limit(
    X: Any, y: Any, depth: int, alpha: float, w_bar: Any = None, *, tol: float = 1e-10
) -> QMinimizer:
    """Limit of gradient flow on a depth-L diagonal network in regression (Corollary 5).

    Yun et al. (2021) Corollary 5: from ``w_l(0) = alpha w_bar`` (``l < L``) and
    ``w_L(0) = 0``, with every ``w_bar_j != 0``, ``beta(t)`` converges to::

        argmin_z  alpha^2 sum_j w_bar_j^2 H_L(z_j / (alpha^L |w_bar_j|^L))  s.t.  X z = y,

    Theorem 5 with ``S = U_l = I``. Interpolates between weighted L1 (``alpha -> 0``) and
    weighted L2 (``alpha -> inf``, weights ``w_bar^{2-2L}``).

    Parameters
    ----------
    X, y : array_like of shapes (n, d), (n,)
    depth : int
        ``L >= 2``.
    alpha : float
        Initialization scale.
    w_bar : array_like of shape (d,), optional
        Initial direction of the first ``L - 1`` layers (nonzero entries); default ones.
    tol : float, default 1e-10
        See :func:`q_minimizer`.

    Returns
    -------
    QMinimizer
        ``coef`` is the limit of ``beta``.
    """
    X, _ = check_X_targets(X, y)
    sol = q_minimizer(X, y, depth, alpha, w_bar, None, tol=tol)
    return replace(sol, theorem="Yun et al. 2021, Corollary 5")


def _is_even(v: np.ndarray) -> bool:
    """``v[k] == v[d-k]`` for ``k = 1..d-1`` (Yun Appendix A.4, 0-based), to rounding."""
    scale = max(float(np.max(np.abs(v), initial=0.0)), 1e-300)
    return bool(np.all(np.abs(v[1:] - v[1:][::-1]) <= 1e-12 * scale))


def conv_even_regression_limit(
    X: Any, y: Any, depth: int, alpha: float, w_bar: Any = None, *, tol: float = 1e-10
) -> QMinimizer:
    """Limit of gradient flow on a full-width convolutional network, even data (Corollary 6).

    Yun et al. (2021) Corollary 6: when every ``x_i`` and ``w_bar`` are even
    (``v[k] = v[d-k]``, 0-based), gradient flow from ``w_l(0) = alpha w_bar`` (``l < L``),
    ``w_L(0) = 0`` stays even, the DFT ``F w`` stays real, and ``beta(t)`` converges to the
    minimizer of Theorem 5 with ``S = d^{(L-1)/2} Re(F)`` and ``eta_bar = F w_bar``, where
    ``F[j, k] = exp(-2 pi i j k / d) / sqrt(d)`` is the unitary DFT. For even z this is

        argmin_{z even} Q_{L,alpha,F w_bar}(F z / d^{(L-1)/2})  s.t.  X z = y.

    Note: the corollary as printed writes ``Q(F z)``, without the factor ``d^{-(L-1)/2}``
    that Theorem 5 gives for ``S = d^{(L-1)/2} F`` (Assumption 1 for full-width convolutions,
    Appendix D.3). The two agree only for ``d = 1`` or ``L = 1`` and as ``alpha -> 0`` or
    ``alpha -> inf``; this function follows Theorem 5, which the tests confirm against a
    direct simulation of gradient flow.

    Parameters
    ----------
    X, y : array_like of shapes (n, d), (n,)
        Every row of X must be even.
    depth : int
        ``L >= 2``.
    alpha : float
    w_bar : array_like of shape (d,), optional
        Even initial filter with every ``[F w_bar]_j != 0``; default ``sqrt(d) e_0``
        (``F w_bar = 1``).
    tol : float, default 1e-10

    Returns
    -------
    QMinimizer
        ``coef`` is the limit of ``beta``; ``rho = F coef / d^{(L-1)/2}``.
    """
    X, y = check_X_targets(X, y)
    d = X.shape[1]
    for i, row in enumerate(X):
        if not _is_even(row):
            raise ValueError(
                f"x_{i} is not even (x[k] = x[d-k] fails); Corollary 6 needs even data."
            )
    if w_bar is None:
        w = np.zeros(d)
        w[0] = math.sqrt(d)
    else:
        w = np.asarray(w_bar, dtype=np.float64).ravel()
        if w.shape != (d,) or not np.all(np.isfinite(w)):
            raise ValueError(f"w_bar must be a finite vector of length {d}.")
        if not _is_even(w):
            raise ValueError("w_bar is not even (w[k] = w[d-k] fails); Corollary 6 needs it.")
    L = _check_depth(depth)
    F = np.fft.fft(np.eye(d)) / math.sqrt(d)  # symmetric unitary DFT matrix
    eta = (F @ w).real
    S = d ** ((L - 1) / 2) * F.real
    sol = q_minimizer(X, y, L, alpha, _check_eta(eta, d, "F w_bar"), S, tol=tol)
    return replace(sol, theorem="Yun et al. 2021, Corollary 6")


@dataclass(frozen=True, eq=False)
class MatrixSensingLimit:
    """Limit of deep matrix sensing with commuting symmetric sensors (Corollary 7).

    Attributes
    ----------
    matrix : ndarray of shape (d, d)
        ``M_inf = lim W_1 ... W_L``, symmetric.
    eigenvalues : ndarray of shape (d,)
        ``eig(M_inf)`` in the common eigenbasis.
    basis : ndarray of shape (d, d)
        Orthogonal ``U`` diagonalizing every sensor.
    solution : QMinimizer
        The diagonal-network problem solved (``coef`` = ``eigenvalues``).
    """

    matrix: np.ndarray
    eigenvalues: np.ndarray
    basis: np.ndarray
    solution: QMinimizer


def matrix_sensing_limit(
    A: Any, y: Any, depth: int, alpha: float, *, tol: float = 1e-10, seed: int | None = 0
) -> MatrixSensingLimit:
    """Limit of deep matrix sensing with commuting symmetric sensors (Yun et al. Corollary 7).

    Gradient flow on ``sum_i (y_i - <A_i, W_1 ... W_L>)^2`` from ``W_l(0) = alpha I``
    (``l < L``), ``W_L(0) = 0`` keeps every ``W_l`` diagonal in the common eigenbasis ``U``
    of the sensors, and the product converges to

        argmin_{M symmetric} alpha^2 sum_j H_L(eig(M)_j / alpha^L)  s.t.  <A_i, M> = y_i,

    i.e. Corollary 5 with ``x_i = eig(A_i)`` (in the basis U) and ``w_bar = 1``. Interpolates
    between minimum nuclear norm (``alpha -> 0``) and minimum Frobenius norm (``alpha -> inf``).

    Parameters
    ----------
    A : array_like of shape (n, d, d)
        Symmetric, pairwise commuting, linearly independent sensor matrices.
    y : array_like of shape (n,)
    depth : int
        ``L >= 2``.
    alpha : float
    tol : float, default 1e-10
    seed : int or None, default 0
        For the random combination whose eigenvectors diagonalize all sensors.

    Returns
    -------
    MatrixSensingLimit

    Raises
    ------
    ValueError
        Non-symmetric or non-commuting sensors, or infeasible measurements.
    """
    try:
        A = np.asarray(A, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("A must be a real array of shape (n, d, d).") from None
    if A.ndim == 2:
        A = A[None]
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        raise ValueError(f"A must have shape (n, d, d); got {A.shape}.")
    if not np.all(np.isfinite(A)):
        raise ValueError("A contains NaN or inf.")
    n, d, _ = A.shape
    scale = max(float(np.max(np.abs(A))), 1e-300)
    asym = float(np.max(np.abs(A - A.transpose(0, 2, 1))))
    if asym > 1e-10 * scale:
        raise ValueError(f"the sensors must be symmetric; max |A_i - A_i^T| = {asym:.2e}.")
    A = 0.5 * (A + A.transpose(0, 2, 1))
    for i in range(n):
        for j in range(i + 1, n):
            com = float(np.max(np.abs(A[i] @ A[j] - A[j] @ A[i])))
            if com > 1e-10 * scale * scale * d:
                raise ValueError(
                    f"A_{i} and A_{j} do not commute (max |A_i A_j - A_j A_i| = {com:.2e}); "
                    "Corollary 7 needs commuting sensors."
                )
    rng = np.random.default_rng(seed)
    comb = np.tensordot(rng.standard_normal(n), A, axes=(0, 0))
    U = np.linalg.eigh(comb)[1]
    D = np.einsum("ka,nkl,lb->nab", U, A, U)
    off = float(np.max(np.abs(D - np.einsum("naa->na", D)[:, :, None] * np.eye(d))))
    if off > 1e-8 * scale:
        raise ValueError(
            f"could not diagonalize the sensors simultaneously (off-diagonal {off:.2e}); they "
            "must commute."
        )
    Xe = np.einsum("naa->na", D)
    sol = q_minimizer(Xe, y, depth, alpha, None, None, tol=tol)
    ev = sol.coef
    M = (U * ev) @ U.T
    return MatrixSensingLimit(
        matrix=0.5 * (M + M.T),
        eigenvalues=ev,
        basis=U,
        solution=replace(sol, theorem="Yun et al. 2021, Corollary 7"),
    )


# ----------------------------------------------------------------------------------------
# Theorem 6: 2-layer tensor network, one data point
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TwoLayerLimitPoint:
    """Limit points of Yun et al. (2021) Theorem 6.

    Attributes
    ----------
    layers : list of 2 ndarray
        ``v_1^inf, v_2^inf`` (flat, the model's C-order layout).
    coef : ndarray of shape (d,)
        ``beta(v_1^inf, v_2^inf)``, the limit of the linear coefficients.
    nu : float
        ``g^{-1}(y / alpha^2) = -int_0^inf r``.
    singular_values : ndarray
        ``s`` of the compact SVD ``M(x) = U_1 diag(s) U_2^T``.
    condition : float
        Theorem 6's ``lambda = min_j [U_1^T v1_bar]_j^2 - [U_2^T v2_bar]_j^2`` in the computed
        SVD basis (with repeated singular values it depends on the basis within each block;
        a positive value in any basis suffices for the loss to go to zero).
    theorem : str
    """

    layers: list[np.ndarray]
    coef: np.ndarray
    nu: float
    singular_values: np.ndarray
    condition: float
    theorem: str = "Yun et al. 2021, Theorem 6"


def _solve_increasing(g, dg, target: float, scale: float = 1.0) -> float:
    """Root of a strictly increasing smooth ``g(nu) = target``: bracket, then safeguarded Newton.

    The bracket is grown geometrically from ``[-scale, scale]``; inside it Newton steps that
    leave the bracket are replaced by bisection (rtsafe, Numerical Recipes 9.4).
    """
    lo, hi = -scale, scale
    for _ in range(200):
        if g(lo) <= target:
            break
        lo *= 2.0
    else:
        raise SolverError("could not bracket g^{-1}(y / alpha^2) from below.")
    for _ in range(200):
        if g(hi) >= target:
            break
        hi *= 2.0
    else:
        raise SolverError("could not bracket g^{-1}(y / alpha^2) from above.")
    x = 0.5 * (lo + hi)
    for _ in range(200):
        fx = g(x) - target
        if fx == 0.0:
            return x
        if fx > 0:
            hi = x
        else:
            lo = x
        d = dg(x)
        xn = x - fx / d if d > 0 else 0.5 * (lo + hi)
        if not lo < xn < hi:
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 4e-16 * max(1.0, abs(xn)) or hi - lo <= 4e-16 * max(1.0, abs(x)):
            return xn
        x = xn
    return x


def two_layer_limit_point(
    model: Any, x: Any, y: float, init: Any, alpha: float = 1.0
) -> TwoLayerLimitPoint:
    """Limit point of a 2-layer linear tensor network fitted to one point (Theorem 6).

    Yun et al. (2021) Theorem 6: with the compact SVD ``M(x) = U_1 diag(s) U_2^T``,
    ``eta_1 = U_1^T v1_bar``, ``eta_2 = U_2^T v2_bar`` and squared loss, gradient flow from
    ``v_l(0) = alpha v_l_bar`` converges to

        v_1 = alpha U_1 (eta_1 cosh(nu s) + eta_2 sinh(nu s)) + alpha (I - U_1 U_1^T) v1_bar,
        v_2 = alpha U_2 (eta_1 sinh(nu s) + eta_2 cosh(nu s)) + alpha (I - U_2 U_2^T) v2_bar,

    with ``nu = g^{-1}(y / alpha^2)`` and the strictly increasing
    ``g(nu) = sum_j s_j ((eta_1j^2 + eta_2j^2)/2 sinh(2 s_j nu) + eta_1j eta_2j cosh(2 s_j nu))``
    (solved by a bracketed, safeguarded Newton iteration). Any 2-layer network works: fully
    connected, diagonal, convolutional with any filter size, or a ``Tensor``.

    Parameters
    ----------
    model : fastbias.models.Model of depth 2, or ndarray of shape (d, k_1, k_2)
        The network or its data tensor stack (:func:`fastbias.references.data_tensor_stack`).
    x : array_like of shape (d,)
    y : float
        Target.
    init : sequence of 2 arrays
        Initial directions ``v1_bar, v2_bar`` (layer shapes or flat).
    alpha : float, default 1.0
        Initialization scale: ``v_l(0) = alpha v_l_bar``.

    Returns
    -------
    TwoLayerLimitPoint

    Raises
    ------
    ValueError
        Bad shapes, ``M(x) = 0``, or ``y / alpha^2`` outside the range of ``g`` (only when
        ``eta_1 = -eta_2`` or ``eta_1 = eta_2`` exactly: gradient flow then cannot fit ``y``).
    """
    from .tensor_svd import _as_stack

    alpha = check_positive(alpha, "alpha")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        raise ValueError(
            f"Theorem 6 covers a single data point; got {x.shape[0]} points. With several "
            "points use q_minimizer (Theorem 5) when the network is orthogonally decomposable."
        )
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"x must be one finite data point (a 1-D vector); got shape {x.shape}.")
    try:
        yv = float(np.asarray(y, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"y must be one real target; got {y!r}.") from None
    if not np.isfinite(yv):
        raise ValueError("y must be finite.")
    stack = _as_stack(model, x.shape[0])
    if stack.ndim != 3:
        raise ValueError(
            f"Theorem 6 is for 2-layer networks; the data tensor has order {stack.ndim - 1}."
        )
    k1, k2 = stack.shape[1:]
    init = list(init)
    if len(init) != 2:
        raise ValueError(f"init must hold 2 layers; got {len(init)}.")
    v1b, v2b = (np.asarray(v, dtype=np.float64).ravel() for v in init)
    if v1b.shape[0] != k1 or v2b.shape[0] != k2:
        raise ValueError(
            f"init layers have {v1b.shape[0]} and {v2b.shape[0]} entries; expected {k1}, {k2}."
        )
    if not (np.all(np.isfinite(v1b)) and np.all(np.isfinite(v2b))):
        raise ValueError("init contains NaN or inf.")
    Mx = np.tensordot(x, stack, axes=(0, 0))
    U1, s, V2t = np.linalg.svd(Mx, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        raise ValueError("M(x) = 0: the network output is 0 for this x, so y cannot be fit.")
    m = int(np.sum(s > 1e-12 * s[0]))
    U1, s, U2 = U1[:, :m], s[:m], V2t[:m].T
    e1, e2 = U1.T @ v1b, U2.T @ v2b
    # g(nu) = sum_j s_j/2 [(e1+e2)_j^2/2 e^{2 s_j nu} - (e1-e2)_j^2/2 e^{-2 s_j nu}] (Appendix G)
    cp, cm = 0.5 * (e1 + e2) ** 2, 0.5 * (e1 - e2) ** 2
    cond = float(np.min(e1**2 - e2**2))
    target = yv / alpha**2
    if (target >= 0 and not np.any(cp > 0)) or (target <= 0 and not np.any(cm > 0)):
        raise ValueError(
            f"y / alpha^2 = {target:.3e} is outside the range of g(nu) of Theorem 6 for this "
            f"initialization (lambda = {cond:.3e}; U_1^T v1_bar = {'-' if target >= 0 else ''}"
            "U_2^T v2_bar): gradient flow cannot fit y from it."
        )

    def g(nu: float) -> float:
        with np.errstate(over="ignore"):
            up = np.where(cp > 0, cp * np.exp(2 * s * nu), 0.0)
            down = np.where(cm > 0, cm * np.exp(-2 * s * nu), 0.0)
        return float(np.sum(0.5 * s * (up - down)))

    def dg(nu: float) -> float:
        with np.errstate(over="ignore"):
            up = np.where(cp > 0, cp * np.exp(2 * s * nu), 0.0)
            down = np.where(cm > 0, cm * np.exp(-2 * s * nu), 0.0)
        return float(np.sum(s * s * (up + down)))

    nu = _solve_increasing(g, dg, target, 1.0 / s[0])
    ch, sh = np.cosh(nu * s), np.sinh(nu * s)
    v1 = alpha * (U1 @ (e1 * ch + e2 * sh)) + alpha * (v1b - U1 @ e1)
    v2 = alpha * (U2 @ (e1 * sh + e2 * ch)) + alpha * (v2b - U2 @ e2)
    coef = np.einsum("jab,a,b->j", stack, v1, v2)
    return TwoLayerLimitPoint(
        layers=[v1, v2], coef=coef, nu=float(nu), singular_values=s, condition=cond
    )
