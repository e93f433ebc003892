"""Yun et al. (2021) Lemma 4: the ODE ``p' = p^{L-2} q, q' = p^{L-1}, p(0) = 1, q(0) = 0`` on its
maximal interval ``(-c_L, c_L)``, ``h_L = p^{L-1} q`` and ``H_L(t) = int_0^t h_L^{-1}``
(:func:`h_L`, :func:`h_L_inverse`, :func:`H_L`, :func:`lemma4_solution`, :func:`lemma4_radius`).

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
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "lemma4_radius",
    "lemma4_solution",
    "h_L",
    "h_L_inverse",
    "H_L",
    "check_depth",
    "as_array",
    "lemma4_forward",
    "lemma4_inverse",
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


def check_depth(L: Any) -> int:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2:
        raise ValueError(f"L must be an integer >= 2 (the depth of Lemma 4); got {L!r}.")
    return int(L)


@lru_cache(maxsize=64)
def radius_dd(L: int) -> tuple[float, float, float]:
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
    return radius_dd(check_depth(L))[0]


def as_array(x: Any, name: str) -> tuple[np.ndarray, bool]:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array of real numbers.") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; Lemma 4's functions need finite input.")
    return arr, arr.ndim == 0


def lemma4_forward(u: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(h_L, h_L', G_L)`` at ``u`` (validated, inside the domain)."""
    c_hi, c_lo, u_split = radius_dd(L)
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


def lemma4_inverse(t: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    L = check_depth(L)
    u, scalar = as_array(t, "t")
    _in_domain(u, L)
    _, _, G = lemma4_forward(u, L)
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
    L = check_depth(L)
    u, scalar = as_array(t, "t")
    _in_domain(u, L)
    return _out(lemma4_forward(u, L)[0], scalar)


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
    L = check_depth(L)
    t, scalar = as_array(t, "t")
    return _out(lemma4_inverse(t, L)[0], scalar)


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
    L = check_depth(L)
    t, scalar = as_array(t, "t")
    return _out(lemma4_inverse(t, L)[1], scalar)
