"""Yun et al. (2021) Theorem 5: the limit of gradient flow in underdetermined regression for an
orthogonally decomposable network (Assumption 1, real ``S``) initialized at
``v_l(0) = alpha U_l eta_bar`` (``l < L``), ``v_L(0) = 0``: ``beta(inf) = S^T rho`` with ``rho``
the minimizer of ``Q_{L,alpha,eta_bar}(rho)`` subject to ``X S^T rho = y`` (:func:`q_minimizer`,
:func:`q_norm`, through Lemma 4's ``H_L`` of :mod:`fastbias.references.lemma4`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbias._validation import check_positive, check_positive_int, check_X_targets
from fastbias.exceptions import SolverError

from .lemma4 import as_array, check_depth, lemma4_forward, lemma4_inverse, lemma4_radius

__all__ = ["q_norm", "QMinimizer", "q_minimizer", "check_eta"]

# ----------------------------------------------------------------------------------------
# Theorem 5: the Q-norm minimizer
# ----------------------------------------------------------------------------------------


def check_eta(eta_bar: Any, m: int, name: str = "eta_bar") -> np.ndarray:
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
    L = check_depth(L)
    alpha = check_positive(alpha, "alpha")
    r, _ = as_array(rho, "rho")
    r = r.ravel()
    eta = check_eta(eta_bar, r.size)
    a = alpha**L * np.abs(eta) ** L
    H = lemma4_inverse(r / a, L)[1]
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
    L = check_depth(L)
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
    eta = check_eta(eta_bar, m)

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
        h, dh, G = lemma4_forward(arg, L)
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
    gQ = lemma4_inverse(rho / a, L)[0] / b
    stat = float(np.linalg.norm(gQ - B @ nu) / max(float(np.linalg.norm(gQ)), 1e-300))
    if max(residual, stat) > tol:
        raise SolverError(
            f"q_minimizer stopped with feasibility residual {residual:.2e} and stationarity "
            f"residual {stat:.2e} (tol={tol:.1e}) for L = {L}, alpha = {alpha:g}. With "
            f"alpha^L min|eta|^L = {float(a.min()):.1e} the saturated coordinates need "
            "h_L^{-1} within rounding of c_L, beyond double precision; use a larger alpha (the "
            "alpha -> 0 limit is the weighted L1 problem of Remark 4) or a larger tol."
        )
    objective = float(alpha**2 * np.sum(eta**2 * lemma4_inverse(rho / a, L)[1]))
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
    gscale = float(np.linalg.norm(lemma4_inverse(rho / a, L)[0] / b))
    gscale = max(gscale, float(np.linalg.norm(B @ nu)))
    if not gscale > 0:
        gscale = float(np.linalg.norm(lemma4_radius(L) / b)) if L >= 3 else 1.0

    def kkt(
        r: np.ndarray, v: np.ndarray
    ) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
        u, _, du, _ = lemma4_inverse(r / a, L)
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
