"""First-order stationary points of the non-convex l_p max-margin problems, 0 < p < 1.

Gunasekar et al. (2018) Theorem 2a and Yun et al. (2021) Theorem 2 / Corollaries 2-3: gradient
descent on depth-L diagonal, full-width convolutional or orthogonally decomposable tensor
networks converges in direction to a first-order stationary point of

    min ||rho||_p  s.t.  y_n x_n^T beta >= 1,   p = 2/L,

with ``rho = beta`` (diagonal), ``rho = F beta`` (convolutional) or ``beta = S^T rho``. The
problem is NP-hard in general, so we return the stationary points reached from several starts
by iteratively reweighted L1 (IRL1), a majorize-minimize method: each step solves the convex
weighted problem ``min sum_g w_g ||u_g||`` with ``w_g = mu_g (||u_g|| + eps)^{p-1}`` (an LP or
SOCP, :mod:`._conic`), eps decreasing to 0; then, on the support it found, the weights
``mu_g ||u_g||^{p-1}`` (zero groups fixed), until the support and active set settle; then Newton's
method on the KKT equations of that support (eq. 13) and the certificate of
:mod:`.stationarity`. Only certified points are returned.
"""

from __future__ import annotations

import numpy as np

from fastbias.exceptions import SolverError

from . import _conic
from ._convex import check_rows, not_separable, package, refine
from ._problem import GroupProblem
from ._results import MarginSolution, StationaryPoint

__all__ = ["irl1_margin"]


def _normalized(w: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Weights scaled to median 1 on the kept groups (the LP/SOCP solution is unchanged)."""
    med = float(np.median(w[keep]))
    return w / med if med > 0 and np.isfinite(med) else w


def _run(prob: GroupProblem, Z: np.ndarray, w0: np.ndarray, tol: float):
    """One IRL1 run from initial weights ``w0``.

    Returns ``(u, certificate, score, solver)`` for the best-certified point reached (``u``
    scaled to minimum margin 1).
    """
    p = prob.p
    ng = prob.ng
    every = np.ones(ng, dtype=bool)
    try:
        res = _conic.solve_weighted(prob, _normalized(prob.mu * w0, every))
    except _conic.Infeasible:
        raise not_separable(Z, "HiGHS" if prob.singletons else "Clarabel") from None
    exact = res.solver.startswith("highs")
    zero_tol, act_tol = (1e-9, 1e-9) if exact else (1e-7, 1e-6)

    def attempt(u, alpha):
        return refine(prob, u, alpha, zero_tol=zero_tol, act_tol=act_tol)

    u = res.u
    r = prob.group_norms(u)
    top = float(r.max())
    eps = 0.5 * top
    # phase 1: smoothed weights, eps -> 0 (lets zero groups re-enter)
    for _ in range(30):
        eps *= 0.2
        w = prob.mu * (r + eps) ** (p - 1.0)
        res = _conic.solve_weighted(prob, _normalized(w, every))
        change = float(np.linalg.norm(res.u - u)) / max(float(np.linalg.norm(u)), 1e-300)
        u = res.u
        r = prob.group_norms(u)
        top = float(r.max())
        if eps <= 1e-9 * top and change <= 1e-6:
            break
    best = attempt(u, res.alpha)
    if best[2] <= tol:
        return (*best, res.solver)
    # phase 2: exact majorizer on the current support (zero groups stay zero), with a Newton
    # polish whenever the support and the active set repeat
    thresh = 1e-10 if exact else 1e-7
    prev_key = None
    for _ in range(60):
        keep = r > thresh * top
        w = np.zeros(ng)
        w[keep] = prob.mu[keep] * r[keep] ** (p - 1.0)
        res = _conic.solve_weighted(prob, _normalized(w, keep), keep)
        change = float(np.linalg.norm(res.u - u)) / max(float(np.linalg.norm(u)), 1e-300)
        u = res.u
        r = prob.group_norms(u)
        top = float(r.max())
        m = prob.G @ u
        key = (tuple(np.flatnonzero(r > thresh * top)), tuple(np.flatnonzero(m <= 1 + 1e-7)))
        if key == prev_key or change <= (1e-13 if exact else 1e-9):
            cand = attempt(u, res.alpha)
            if cand[2] < best[2]:
                best = cand
            if best[2] <= tol or change <= (1e-13 if exact else 1e-9):
                break
        prev_key = key
    return (*best, res.solver)


def irl1_margin(
    prob: GroupProblem,
    Z: np.ndarray,
    starts: int,
    seed: int | None,
    tol: float,
    l2_beta: np.ndarray | None,
) -> MarginSolution:
    """Stationary points of ``min ||rho||_p s.t. Z beta >= 1`` (p < 1) from ``starts`` starts.

    Start 0 uses uniform weights (its first step is the p = 1 solution), start 1 the L2 SVM
    ``l2_beta`` (weights ``(|rho_L2| + eps)^{p-1}``), the others random log-normal weights.
    """
    check_rows(Z)
    rng = np.random.default_rng(seed)
    ng = prob.ng
    found: list[tuple[np.ndarray, object, float, int]] = []
    failures: list[float] = []
    solver = ""
    for s in range(starts):
        if s == 0:
            w0 = np.ones(ng)
        elif s == 1 and l2_beta is not None and prob.from_beta is not None:
            try:
                r2 = prob.group_norms(prob.from_beta(l2_beta))
                w0 = (r2 + 0.1 * float(r2.max())) ** (prob.p - 1.0)
            except ValueError:  # rho not determined by beta (non-square S)
                w0 = np.exp(1.5 * rng.standard_normal(ng))
        else:
            w0 = np.exp(1.5 * rng.standard_normal(ng))
        us, cert, score, solver = _run(prob, Z, w0, tol)
        if score > tol:
            failures.append(score)
            continue
        dup = False
        for other in found:
            if np.linalg.norm(us - other[0]) <= 1e-6 * max(np.linalg.norm(other[0]), 1e-300):
                dup = True
                break
        if not dup:
            found.append((us, cert, score, s))
    if not found:
        raise SolverError(
            f"none of the {starts} IRL1 runs for norm={prob.norm!r}, p={prob.p} reached a "
            f"certified stationary point (best KKT residual {min(failures):.2e} > tol={tol:.1e})."
            " Pass a larger tol or more starts."
        )
    found.sort(key=lambda f: prob.objective(f[0]))
    points = []
    for us, cert, _, s in found:
        beta = np.asarray(prob.to_beta(us), dtype=np.float64)
        beta.setflags(write=False)
        obj = prob.objective(us)
        rho = prob.to_rho(us)
        rho.setflags(write=False)
        points.append(
            StationaryPoint(
                coef=beta, objective=obj, margin=1.0 / obj, certificate=cert, start=s, rho=rho
            )
        )
    us, cert, score, _ = found[0]
    return package(prob, us, cert, score, "stationary", solver, tuple(points))
