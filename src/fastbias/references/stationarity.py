"""The sub-stationarity certificate of Gunasekar et al. (2018), eqs. (11)-(13).

A feasible beta of ``min ||beta_hat||_p s.t. y_n x_n^T beta >= 1`` is a first-order
(sub-)stationary point if some ``alpha >= 0``, zero off the active constraints, has

    sum_n alpha_n y_n x_hat_n  in  the Clarke subdifferential of ||beta_hat||_p     (eq. 11)

where, for the objective ``sum_k |beta_hat_k|^p`` (the form of eq. 13, same stationary points),
the subdifferential is ``{v : v_k = p |beta_hat_k|^{p-1} exp(i phi_k) where beta_hat_k != 0}``
with ``|v_k| <= 1`` at zero entries for p = 1 (eq. 12) and no condition there for p < 1 (eq.
13). The certificate finds the alpha that minimizes the distance to that set, by NNLS
(p < 1, or no zero entries), bounded-variable least squares (p = 1, real entries) or a small
SOCP (p = 1, complex entries; the smaller of its distance and that of the NNLS multipliers of
the support equations is kept), and reports the distance relative to the size of the gradient.
The reported distance is always attained by the returned alpha (an upper bound on the exact
minimum, equal to it up to rounding).
Yun et al. Theorem 2 states the same conditions for ``rho`` with ``x_hat_n = conj(S) x_n``
(their proof, eq. 38). For ``"l2"`` the condition is the KKT system of Soudry eq. (2.6),
``beta = sum_n alpha_n y_n x_n``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from fastbias._validation import check_choice, check_positive, check_vector, check_X_y

from ._problem import (
    GroupProblem,
    dft_problem,
    l1_problem,
    rank_check,
    transformed_problem,
)
from ._results import StationarityResult, StationaryPoint
from ._scale import rescale_certificate, unit_scale

__all__ = ["stationarity", "stationary_point_near", "StationarityResult", "check_norm_p"]

NORMS = ("l2", "l1", "dft-l1", "lp", "dft-lp", "transformed")


def check_norm_p(norm: Any, p: Any, norms: tuple[str, ...] = NORMS) -> tuple[str, float]:
    """Validate a norm name and its exponent; returns ``(norm, p)`` with p a float."""
    check_choice(norm, "norm", norms)
    if norm == "l2":
        if p is not None and float(p) != 2.0:
            raise ValueError(f"norm='l2' takes no p (or p=2); got p={p!r}.")
        return norm, 2.0
    if norm in ("l1", "dft-l1"):
        if p is not None and float(p) != 1.0:
            raise ValueError(
                f"norm={norm!r} is the p = 1 norm; got p={p!r}. Use norm="
                f"{'dft-lp' if norm == 'dft-l1' else 'lp'!r} for 0 < p < 1."
            )
        return norm, 1.0
    if p is None:
        raise ValueError(
            f"norm={norm!r} needs the exponent p in (0, 1] (p = 2/L for a depth-L network, "
            "Gunasekar eq. 10 / Yun Theorem 2)."
        )
    try:
        pf = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"p must be a number in (0, 1]; got {p!r}.") from None
    if not np.isfinite(pf) or not 0.0 < pf <= 1.0:
        raise ValueError(
            f"p must be in (0, 1] (p = 2/L for a depth-L network; p > 1 is not a sparsity "
            f"penalty of these networks); got p={p!r}."
        )
    return norm, pf


def build_problem(norm: str, p: float, Z: np.ndarray, S: Any = None) -> GroupProblem:
    """The group problem of a max-margin ``norm`` on data ``Z = y x``."""
    if norm in ("l1", "lp"):
        return l1_problem(Z, p)
    if norm in ("dft-l1", "dft-lp"):
        return dft_problem(Z, p)
    return transformed_problem(Z, check_S(S, Z.shape[1]), p)


def check_S(S: Any, d: int) -> np.ndarray:
    """Validate Yun et al.'s S: an (m, d) matrix, m >= d, of full column rank (Assumption 1)."""
    if S is None:
        raise ValueError(
            "norm='transformed' needs the matrix S of Yun et al. Assumption 1 (S=...); "
            "e.g. the identity for a diagonal network."
        )
    S = np.asarray(S)
    if S.dtype.kind not in "biufc":
        raise ValueError(f"S must be a numeric matrix; got dtype {S.dtype}.")
    S = S.astype(np.complex128 if S.dtype.kind == "c" else np.float64)
    if S.ndim != 2 or S.shape[1] != d:
        raise ValueError(f"S must have shape (m, d) with d = {d} features; got {S.shape}.")
    if not np.all(np.isfinite(S)):
        raise ValueError("S contains NaN or inf.")
    rank_check(S, "S", "Yun et al. Assumption 1 needs S of full column rank")
    return S


# ----------------------------------------------------------------------------------------
# least-distance solves
# ----------------------------------------------------------------------------------------


def _nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    if A.shape[1] == 0:
        return np.zeros(0)
    maxiter = max(3 * A.shape[1], 100)
    for _ in range(3):
        try:
            return nnls(A, b, maxiter=maxiter)[0]
        except RuntimeError:
            maxiter *= 10
    from fastbias.exceptions import SolverError

    raise SolverError(f"NNLS did not converge in {maxiter // 10} iterations (certificate).")


def _orth(M: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of M."""
    if M.shape[1] == 0:
        return np.zeros((M.shape[0], 0))
    U, s, _ = np.linalg.svd(M, full_matrices=False)
    tol = max(M.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0) * 10
    return U[:, s > tol]


def _least_distance(
    prob: GroupProblem,
    Ga: np.ndarray,
    t: np.ndarray,
    on: np.ndarray,
    off_groups: np.ndarray,
    p: float,
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``min || Ga^T alpha + E^T nu - v ||`` over alpha >= 0, nu, v in the subdifferential.

    ``t`` is the gradient on the coordinates ``on`` (support); off-support groups add
    ``||v_g|| <= mu_g`` for p = 1 and nothing for p < 1.
    """
    E = prob.E
    nA = Ga.shape[0]
    # alpha (and nu) from the equations on the support alone, by NNLS
    A = Ga.T[on]
    Ev = None if E is None else E.T[on]
    if Ev is not None and Ev.shape[1]:
        Q = _orth(Ev)
        A_p = A - Q @ (Q.T @ A)
        t_p = t - Q @ (Q.T @ t)
    else:
        A_p, t_p = A, t
    alpha = _nnls(A_p, t_p) if nA else np.zeros(0)
    dist = float(np.linalg.norm(A_p @ alpha - t_p))
    nu = None
    if Ev is not None and Ev.shape[1]:
        nu = np.linalg.lstsq(Ev, t - A @ alpha, rcond=None)[0]
    if p < 1.0 or off_groups.size == 0:
        return dist, alpha, nu
    # p = 1: the zero groups need ||g_g|| <= mu_g. The NNLS alpha with the nearest points of
    # those balls is one feasible choice (exact when it already satisfies them); the joint
    # problem is solved by BVLS (real) or an SOCP (complex); keep the smaller distance, which
    # is always attained by the multipliers returned.
    g = Ga.T @ alpha if nA else np.zeros(prob.n)
    if nu is not None:
        g = g + E.T @ nu
    over = np.maximum(prob.group_norms(g)[off_groups] - prob.mu[off_groups], 0.0)
    dist = float(np.hypot(dist, np.linalg.norm(over)))
    if dist == 0.0:
        return dist, alpha, nu
    n = prob.n
    off_cols = np.flatnonzero(np.isin(prob.gid, off_groups))
    t_full = np.zeros(n)
    t_full[on] = t
    nE = 0 if E is None else E.shape[0]
    if prob.singletons:
        from scipy.optimize import lsq_linear

        J = np.zeros((n, off_cols.size))
        J[off_cols, np.arange(off_cols.size)] = 1.0
        blocks = [Ga.T] + ([E.T] if nE else []) + [-J]
        M = np.hstack(blocks)
        mu_off = prob.mu[prob.gid[off_cols]]
        lb = np.concatenate([np.zeros(nA), np.full(nE, -np.inf), -mu_off])
        ub = np.concatenate([np.full(nA, np.inf), np.full(nE, np.inf), mu_off])
        res = lsq_linear(M, t_full, bounds=(lb, ub), method="bvls", tol=1e-15, max_iter=None)
        x = np.clip(res.x, lb, ub)
        d2 = float(np.linalg.norm(M @ x - t_full))
        if d2 < dist:
            return d2, np.maximum(x[:nA], 0.0), (x[nA : nA + nE] if nE else None)
        return dist, alpha, nu
    d2, a2, nu2 = _least_distance_socp(prob, Ga, t_full, off_groups)
    if d2 < dist:
        return d2, a2, nu2
    return dist, alpha, nu


def _least_distance_socp(prob, Ga, t_full, off_groups):
    """The p = 1 least-distance problem with complex (two-coordinate) groups, by Clarabel."""
    import clarabel
    from scipy import sparse

    E = prob.E
    n = prob.n
    nA = Ga.shape[0]
    nE = 0 if E is None else E.shape[0]
    off_cols = np.flatnonzero(np.isin(prob.gid, off_groups))
    nv = off_cols.size
    # x = [alpha (nA), nu (nE), v (nv), s (1)]
    nx = nA + nE + nv + 1
    J = np.zeros((n, nv))
    J[off_cols, np.arange(nv)] = 1.0
    M = np.hstack([Ga.T, E.T if nE else np.zeros((n, 0)), -J])  # r = M x[:-1] - t_full
    rows = []
    rhs = []
    cones = []
    if nA:
        rows.append(np.hstack([-np.eye(nA), np.zeros((nA, nx - nA))]))
        rhs.append(np.zeros(nA))
        cones.append(clarabel.NonnegativeConeT(nA))
    # (s, r) in SOC: s_cone = b - A x = (s, M x - t)
    top = np.zeros((1, nx))
    top[0, -1] = -1.0
    rows += [top, np.hstack([-M, np.zeros((n, 1))])]
    rhs += [np.zeros(1), -t_full]
    cones.append(clarabel.SecondOrderConeT(n + 1))
    # ||v_g|| <= mu_g
    vpos = {int(c): i for i, c in enumerate(off_cols)}
    for g in off_groups:
        cs = np.flatnonzero(prob.gid == g)
        blk = np.zeros((1 + cs.size, nx))
        for k, c in enumerate(cs):
            blk[1 + k, nA + nE + vpos[int(c)]] = -1.0
        rows.append(blk)
        rhs.append(np.r_[prob.mu[g], np.zeros(cs.size)])
        cones.append(clarabel.SecondOrderConeT(1 + cs.size))
    A = sparse.csc_matrix(np.vstack(rows))
    b = np.concatenate(rhs)
    q = np.zeros(nx)
    q[-1] = 1.0
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = 1e-12
    settings.tol_gap_rel = 1e-12
    settings.tol_feas = 1e-12
    sol = clarabel.DefaultSolver(sparse.csc_matrix((nx, nx)), q, A, b, cones, settings).solve()
    x = np.asarray(sol.x)
    alpha = np.maximum(x[:nA], 0.0)
    nu = x[nA : nA + nE] if nE else None
    v = x[nA + nE : nA + nE + nv]
    # project v into its balls and recompute the distance exactly
    for g in off_groups:
        cs = np.flatnonzero(prob.gid[off_cols] == g)
        nv_g = np.linalg.norm(v[cs])
        if nv_g > prob.mu[g]:
            v[cs] *= prob.mu[g] / nv_g
    r = M @ np.concatenate([alpha, nu if nu is not None else np.zeros(0), v]) - t_full
    return float(np.linalg.norm(r)), alpha, nu


# ----------------------------------------------------------------------------------------
# the certificate on a group problem
# ----------------------------------------------------------------------------------------


def certify(
    prob: GroupProblem, u: np.ndarray, tol: float = 1e-6, zero_tol: float = 1e-6
) -> tuple[StationarityResult, np.ndarray]:
    """Certificate of ``u`` for ``prob``; returns it and the scaled u (min margin 1).

    Raises ValueError if u violates a margin constraint (it is then not a scaled feasible
    point of the max-margin problem).
    """
    p = prob.p
    u = np.asarray(u, dtype=np.float64)
    scale = 1.0
    N = 0 if prob.G is None else prob.G.shape[0]
    if N:
        m = prob.G @ u
        mmin = float(m.min())
        if not mmin > 0:
            raise ValueError(
                f"beta does not separate the data: min_n y_n x_n^T beta = {mmin:.3e} <= 0, so "
                "no positive scaling of it is feasible and it cannot be a stationary point."
            )
        scale = 1.0 / mmin
        u = u * scale
        m = m * scale
        active = np.flatnonzero(m <= 1.0 + tol).astype(np.int64)
    else:
        active = np.zeros(0, dtype=np.int64)
    r = prob.group_norms(u)
    mag = r * prob.gscale
    top = float(mag.max(initial=0.0))
    supp_g = np.flatnonzero(mag > zero_tol * top) if top > 0 else np.zeros(0, np.int64)
    off_g = np.setdiff1d(np.arange(prob.ng), supp_g)
    on = np.flatnonzero(np.isin(prob.gid, supp_g))
    g_of = prob.gid[on]
    t = prob.mu[g_of] * p * r[g_of] ** (p - 2.0) * u[on]
    Ga = prob.G[active] if N else np.zeros((0, prob.n))
    dist, alpha_a, nu = _least_distance(prob, Ga, t, on, off_g, p)
    tn = float(np.linalg.norm(t))
    rel = dist / tn if tn > 0 else 0.0
    alpha = np.zeros(N)
    alpha[active] = alpha_a
    rho = prob.to_rho(u)
    amag = np.abs(rho)
    rtop = float(amag.max(initial=0.0))
    support = np.flatnonzero(amag > zero_tol * rtop).astype(np.int64) if rtop > 0 else active[:0]
    res = StationarityResult(
        residual=float(rel),
        distance=float(dist),
        alpha=alpha,
        active=active,
        support=support,
        scale=float(scale),
        norm=prob.norm,
        p=float(p),
        eq_multipliers=nu,
    )
    return res, u


def certify_l2(Z: np.ndarray, beta: np.ndarray, tol: float) -> StationarityResult:
    """KKT of Soudry eq. (2.6) for ``beta`` scaled to min margin 1: NNLS for alpha."""
    m = Z @ beta
    mmin = float(m.min())
    if not mmin > 0:
        raise ValueError(
            f"beta does not separate the data: min_n y_n x_n^T beta = {mmin:.3e} <= 0, so no "
            "positive scaling of it is feasible and it cannot be a stationary point."
        )
    scale = 1.0 / mmin
    b = beta * scale
    active = np.flatnonzero(m * scale <= 1.0 + tol).astype(np.int64)
    a = _nnls(Z[active].T, b)
    dist = float(np.linalg.norm(Z[active].T @ a - b))
    alpha = np.zeros(Z.shape[0])
    alpha[active] = a
    return StationarityResult(
        residual=dist / float(np.linalg.norm(b)),
        distance=dist,
        alpha=alpha,
        active=active,
        support=np.arange(beta.shape[0], dtype=np.int64),
        scale=float(scale),
        norm="l2",
        p=2.0,
    )


# ----------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------


def stationarity(
    beta: Any,
    X: Any,
    y: Any = None,
    norm: str = "l2",
    p: float | None = None,
    *,
    S: Any = None,
    tol: float = 1e-6,
    zero_tol: float = 1e-6,
) -> StationarityResult:
    """Sub-stationarity certificate of a direction for a max-margin problem.

    Gunasekar et al. (2018) eqs. (11)-(13): scale ``beta`` to minimum margin 1, take the active
    constraints (margin ``<= 1 + tol``), and find ``alpha >= 0`` on them minimizing the
    distance of ``sum_n alpha_n y_n x_hat_n`` to the Clarke subdifferential of
    ``sum_k |beta_hat_k|^p`` at ``beta_hat`` (eq. 12 for p = 1, eq. 13 for p < 1; entries
    with ``|beta_hat_k| <= zero_tol * max_k |beta_hat_k|`` count as zero). A residual near 0
    certifies a first-order stationary point (the global optimum for the convex norms).

    Parameters
    ----------
    beta : array_like of shape (d,)
        A direction (any positive scaling) that separates the data.
    X, y : array_like
        Data and binary labels, as for :func:`max_margin`.
    norm : {"l2", "l1", "dft-l1", "lp", "dft-lp", "transformed"}
        The problem: Soudry eq. (2.4); Gunasekar eq. (9) / (10) with the unitary DFT of
        :mod:`fastbias.references._dft`; Yun Corollary 2; Yun Theorem 2 with ``S``.
    p : float, optional
        Exponent in (0, 1] for ``"lp"``, ``"dft-lp"``, ``"transformed"`` (p = 2/L).
    S : array_like of shape (d, d), optional
        Invertible (possibly complex) matrix for ``"transformed"``; ``rho = S^{-T} beta``.
    tol : float, default 1e-6
        Margin tolerance of the active set (relative to the minimum margin 1). Use a looser
        value (1e-3 .. 1e-2) for directions from finite GD runs.
    zero_tol : float, default 1e-6
        Entries of the transformed vector below ``zero_tol`` times its largest magnitude are
        zero (free for p < 1, in the unit ball for p = 1).

    Returns
    -------
    StationarityResult

    Raises
    ------
    ValueError
        Bad arguments, or beta does not separate the data.
    """
    X, y = check_X_y(X, y)
    N, d = X.shape
    beta = check_vector(beta, d, "beta")
    norm, p = check_norm_p(norm, p)
    tol = check_positive(tol, "tol")
    zero_tol = check_positive(zero_tol, "zero_tol")
    if S is not None and norm != "transformed":
        raise ValueError(f"S is only used with norm='transformed'; got norm={norm!r}.")
    Xs, c = unit_scale(X)
    bs, b = unit_scale(beta[None, :])
    if c != 1.0 or b != 1.0:  # far from unit scale: certify beta / b on X / c (exact)
        res = stationarity(bs[0], Xs, y, norm, p, S=S, tol=tol, zero_tol=zero_tol)
        res = rescale_certificate(res, c, 2.0 if norm == "l2" else p)
        return dataclasses.replace(res, scale=res.scale / b)
    Z = y[:, None] * X
    if norm == "l2":
        return certify_l2(Z, beta, tol)
    prob = build_problem(norm, p, Z, S)
    if prob.from_beta is None:  # pragma: no cover - every builder provides it
        raise ValueError(f"norm={norm!r} cannot be certified from beta alone.")
    u = prob.from_beta(beta)
    return certify(prob, u, tol=tol, zero_tol=zero_tol)[0]


def stationary_point_near(
    beta: Any,
    X: Any,
    y: Any = None,
    norm: str = "dft-lp",
    p: float | None = None,
    *,
    S: Any = None,
    tol: float = 1e-3,
    zero_tol: float = 1e-3,
    accept: float = 1e-9,
    max_move: float = 1e-2,
) -> StationaryPoint:
    """The first-order stationary point that a direction approaches (p < 1: one of many).

    Gunasekar et al. (2018) Theorem 2a: for p = 2/L < 1 the limit direction of GD is *a*
    first-order stationary point of ``min ||beta_hat||_p s.t. y_n x_n^T beta >= 1`` (eq. 10),
    not a global minimizer, and which one depends on the initialization; a solver's random
    starts need not find it. Given a direction ``beta`` near such a point (e.g. ``beta(T)``
    after a long GD run), this finds the point itself: ``beta`` is scaled to minimum margin 1;
    its support (entries of the transformed vector above ``zero_tol`` times the largest) and
    active set (margins within ``tol`` of 1) are fixed; Newton's method solves the KKT
    equations restricted to them (eqs. 11 and 13: ``p |rho_k|^(p-1) e^(i phi_k) = sum_n alpha_n
    y_n x_hat_n[k]`` on the support, margins 1 on the active set); the result is accepted only
    if :func:`stationarity` certifies it (residual at most ``accept``) and it is feasible.

    Parameters
    ----------
    beta : array_like of shape (d,)
        A direction that separates the data (any positive scaling).
    X, y : array_like
        Data and binary labels, as for :func:`max_margin`.
    norm : {"lp", "dft-lp", "l1", "dft-l1", "transformed"}
        The problem, as for :func:`stationarity` (``"l2"`` has a unique solution: use
        :func:`max_margin`).
    p : float, optional
        Exponent in (0, 1] (p = 2/L for a depth-L network).
    S : array_like, optional
        For ``"transformed"`` (Yun et al. Theorem 2).
    tol, zero_tol : float
        Active-set and support thresholds for reading ``beta``: choose them from how far the
        run is from its limit (a direction resolved to 1e-6 needs much less than 1e-3).
    accept : float
        Largest certificate residual accepted for the polished point.
    max_move : float
        Largest distance accepted between the unit directions of ``beta`` and of the point
        found (Newton's method may otherwise land on a far stationary point of the same
        support and active set, which ``beta`` does not approach).

    Returns
    -------
    StationaryPoint
        ``coef`` scaled to minimum margin 1, ``objective`` ``||rho||_p``, the certificate
        (``start = -1``: polished from a given direction).

    Raises
    ------
    ValueError
        Bad arguments, or beta does not separate the data.
    SolverError
        Newton's method did not reach a certified feasible stationary point on beta's support
        and active set (beta is not near one: run GD longer or loosen tol / zero_tol).
    """
    from fastbias.exceptions import SolverError

    from . import _conic

    X, y = check_X_y(X, y)
    N, d = X.shape
    beta = check_vector(beta, d, "beta")
    norm, p = check_norm_p(norm, p)
    if norm == "l2":
        raise ValueError(
            "norm='l2' is the convex SVM problem with one solution; use max_margin(X, y)."
        )
    tol = check_positive(tol, "tol")
    zero_tol = check_positive(zero_tol, "zero_tol")
    accept = check_positive(accept, "accept")
    max_move = check_positive(max_move, "max_move")
    if S is not None and norm != "transformed":
        raise ValueError(f"S is only used with norm='transformed'; got norm={norm!r}.")
    prob = build_problem(norm, p, y[:, None] * X, S)
    if prob.from_beta is None:  # pragma: no cover - every builder provides it
        raise ValueError(f"norm={norm!r} cannot be read from beta alone.")
    cert0, u = certify(prob, prob.from_beta(beta), tol=tol, zero_tol=zero_tol)
    mag = prob.group_norms(u) * prob.gscale
    support = np.flatnonzero(mag > zero_tol * float(mag.max()))
    pol = _conic.polish(prob, u, cert0.active, support)
    if pol is None or not float((prob.G @ pol).min()) >= 1.0 - 1e-9:
        raise SolverError(
            f"Newton's method on the KKT equations of support {support.tolist()} and active set "
            f"{cert0.active.tolist()} did not reach a feasible point near beta; beta is not "
            "close enough to a stationary point (run longer, or loosen tol / zero_tol)."
        )
    cert, us = certify(prob, pol, tol=1e-9, zero_tol=1e-9)
    if not cert.residual <= accept:
        raise SolverError(
            f"the point polished from beta has certificate residual {cert.residual:.2e} > "
            f"accept={accept:.1e}: some multiplier is negative on beta's active set, so beta "
            "is not near a stationary point with that active set."
        )
    obj = float(prob.objective(us))
    coef = np.asarray(prob.to_beta(us), dtype=np.float64)
    move = float(np.linalg.norm(coef / np.linalg.norm(coef) - beta / np.linalg.norm(beta)))
    if not move <= max_move:
        raise SolverError(
            f"the stationary point on beta's support and active set is {move:.3g} away from "
            f"beta's direction (> max_move={max_move:g}): beta does not approach it (run "
            "longer, or pass a larger max_move if that point is wanted)."
        )
    return StationaryPoint(
        coef=coef, objective=obj, margin=1.0 / obj, certificate=cert, start=-1,
        rho=prob.to_rho(us),
    )  # fmt: skip
