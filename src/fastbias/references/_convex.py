"""Solve, polish and certify a convex (p = 1) group problem; shared by the l1/DFT/S solvers."""

from __future__ import annotations

import numpy as np

from fastbias.exceptions import NotSeparableError, SolverError

from . import _conic
from ._problem import GroupProblem
from ._results import MarginSolution, StationarityResult
from .l2_margin import _BIAS_HINT, _NOT_SEPARABLE, _lp_separator
from .stationarity import certify

__all__ = ["check_rows", "not_separable", "refine", "convex_margin", "package"]


def check_rows(Z: np.ndarray) -> None:
    """A zero sample can never have margin >= 1."""
    zero = np.flatnonzero(~np.any(Z != 0, axis=1))
    if zero.size:
        raise NotSeparableError(
            _NOT_SEPARABLE
            + f"sample {int(zero[0])} is the zero vector, so y_n x_n^T w = 0 < 1 for every w."
            + _BIAS_HINT
        )


def not_separable(Z: np.ndarray, solver: str) -> Exception:
    """The error for an infeasible margin problem, double-checked by an LP (HiGHS)."""
    if _lp_separator(Z) is not None:
        return SolverError(
            f"{solver} reported the margin constraints infeasible, but an LP finds a "
            "separator; the problem is too badly scaled for the conic solver."
        )
    return NotSeparableError(
        _NOT_SEPARABLE
        + "no w satisfies y_n x_n^T w > 0 for every n (the margin problem is infeasible; an "
        "LP feasibility check agrees)." + _BIAS_HINT
    )


def _score(prob: GroupProblem, u: np.ndarray, cert: StationarityResult) -> float:
    """KKT residual: certificate residual and, for min-norm problems, interpolation error."""
    score = cert.residual
    if prob.E is not None:
        e = prob.e
        score = max(
            score, float(np.linalg.norm(prob.E @ u - e)) / max(1.0, float(np.linalg.norm(e)))
        )
    return score


def refine(
    prob: GroupProblem,
    u0: np.ndarray,
    alpha0: np.ndarray | None,
    zero_tol: float,
    act_tol: float,
) -> tuple[np.ndarray, StationarityResult, float]:
    """Polish ``u0`` (Newton on the KKT system) and keep the best-certified candidate.

    Candidates: u0 itself and the polished points for two guesses of the active set (by
    slack, and by multiplier). Returns ``(u scaled to min margin 1, certificate, score)``.
    """
    cands = [u0]
    r = prob.group_norms(u0) * prob.gscale
    top = float(r.max(initial=0.0))
    if top > 0:
        support = np.flatnonzero(r > zero_tol * top)
        guesses = []
        if prob.G is not None:
            m = prob.G @ u0
            mmin = float(m.min())
            if mmin > 0:
                guesses.append(np.flatnonzero(m / mmin - 1.0 <= act_tol))
                if alpha0 is not None and np.any(alpha0 > 0):
                    guesses.append(np.flatnonzero(alpha0 > 1e-7 * float(alpha0.max())))
        else:
            guesses.append(np.zeros(0, dtype=np.int64))
        seen = set()
        for A in guesses:
            key = tuple(A.tolist())
            if key in seen:
                continue
            seen.add(key)
            u_start = u0 if prob.G is None else u0 / float((prob.G @ u0).min())
            pol = _conic.polish(prob, u_start, A, support)
            if pol is not None:
                cands.append(pol)
    best = None
    for u in cands:
        if prob.G is not None and not float((prob.G @ u).min()) > 0:
            continue
        cert, us = certify(prob, u, tol=max(act_tol, 1e-9), zero_tol=zero_tol)
        score = _score(prob, us, cert)
        if best is None or score < best[2]:
            best = (us, cert, score)
    if best is None:  # pragma: no cover - u0 is always feasible
        raise SolverError("no feasible candidate solution.")
    return best


def package(
    prob: GroupProblem,
    u: np.ndarray,
    cert: StationarityResult,
    score: float,
    status: str,
    solver: str,
    points: tuple = (),
) -> MarginSolution:
    """Build the :class:`MarginSolution` of a certified point ``u`` (min margin 1)."""
    beta = np.asarray(prob.to_beta(u), dtype=np.float64)
    obj = prob.objective(u)
    rho = prob.to_rho(u)
    coef = beta.copy()
    direction = coef / float(np.linalg.norm(coef))
    support = cert.active.copy()
    dual = cert.alpha.copy()
    for arr in (coef, direction, support, dual, rho):
        arr.setflags(write=False)
    return MarginSolution(
        coef=coef,
        margin=1.0 / obj,
        direction=direction,
        support=support,
        dual=dual,
        kkt_residual=float(score),
        status=status,
        norm=prob.norm,
        p=float(prob.p),
        objective=float(obj),
        rho=rho,
        certificate=cert,
        stationary_points=points,
        solver=solver,
    )


def convex_margin(prob: GroupProblem, Z: np.ndarray, tol: float) -> MarginSolution:
    """Max margin for a p = 1 group problem: solve, polish, certify, package."""
    check_rows(Z)
    try:
        res = _conic.solve_weighted(prob, prob.mu)
    except _conic.Infeasible:
        raise not_separable(Z, "HiGHS" if prob.singletons else "Clarabel") from None
    exact = res.solver.startswith("highs")
    u, cert, score = refine(
        prob, res.u, res.alpha, zero_tol=1e-9 if exact else 1e-7, act_tol=1e-9 if exact else 1e-6
    )
    if score > tol:
        raise SolverError(
            f"max_margin(norm={prob.norm!r}) reached KKT residual {score:.2e} > tol={tol:.1e} "
            f"({res.solver}); the data may be badly scaled. Pass a larger tol to accept it."
        )
    return package(prob, u, cert, score, "optimal", res.solver)
