"""Minimum-norm interpolants ``argmin ||z|| s.t. X z = y`` (Yun et al. 2021, Section 5).

For the squared loss, gradient flow from a small initialization of a depth-2 fully connected,
diagonal or full-width convolutional network approaches the minimum L2, L1 or DFT-domain L1
interpolant (Yun et al. Section 5 and the example of Section 6: ``x = (1, 2), y = 1`` gives
``(0.2, 0.4)``, ``(0, 0.5)`` and ``(1/3, 1/3)``). L2: SVD least squares; L1: an LP (HiGHS);
DFT-L1: an SOCP (Clarabel); the last two are polished on their KKT system and certified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbias._blas import single_blas_thread
from fastbias._validation import check_choice, check_positive, check_X_targets
from fastbias.exceptions import SolverError

from . import _conic
from ._convex import refine
from ._problem import dft_problem, l1_problem
from ._results import MinNormSolution
from ._scale import rescale_solution, unit_scale

__all__ = ["min_norm"]


def _infeasible(X: np.ndarray, y: np.ndarray) -> ValueError:
    z = np.linalg.lstsq(X, y, rcond=None)[0]
    r = float(np.linalg.norm(X @ z - y))
    return ValueError(
        f"X z = y has no solution: y is not in the range of X (least-squares residual "
        f"{r:.3e}, ||y|| = {np.linalg.norm(y):.3e}), so there is no interpolant; "
        f"min_norm needs consistent equations (e.g. N <= d with independent rows)."
    )


def _consistent(X: np.ndarray, y: np.ndarray, z: np.ndarray) -> bool:
    r = float(np.linalg.norm(X @ z - y))
    bound = 1e-10 * (np.linalg.norm(X, 2) * np.linalg.norm(z) + np.linalg.norm(y)) + 1e-300
    return r <= bound


def _min_norm(X: np.ndarray, y: np.ndarray, norm: str, tol: float) -> MinNormSolution:
    N, d = X.shape
    if norm == "l2":
        z = np.linalg.lstsq(X, y, rcond=None)[0]
        if not _consistent(X, y, z):
            raise _infeasible(X, y)
        nu = np.linalg.lstsq(X.T, z, rcond=None)[0]
        kkt = max(
            float(np.linalg.norm(X.T @ nu - z)) / max(float(np.linalg.norm(z)), 1e-300),
            float(np.linalg.norm(X @ z - y)) / max(1.0, float(np.linalg.norm(y))),
        )
        if not np.any(z):
            kkt = 0.0
        obj = float(np.linalg.norm(z))
    else:
        prob = (l1_problem if norm == "l1" else dft_problem)(None, 1.0, E=X, e=y)
        if not np.any(y):
            z = np.zeros(d)
            return MinNormSolution(
                coef=z, objective=0.0, dual=np.zeros(N), kkt_residual=0.0, norm=norm
            )
        try:
            res = _conic.solve_weighted(prob, prob.mu)
        except _conic.Infeasible:
            raise _infeasible(X, y) from None
        exact = res.solver.startswith("highs")
        u, cert, kkt = refine(prob, res.u, None, zero_tol=1e-9 if exact else 1e-7, act_tol=1e-9)
        z = np.asarray(prob.to_beta(u), dtype=np.float64)
        nu = cert.eq_multipliers if cert.eq_multipliers is not None else np.zeros(N)
        nu = np.asarray(nu[:N], dtype=np.float64)
        obj = prob.objective(u)
    if kkt > tol:
        raise SolverError(
            f"min_norm(norm={norm!r}) reached KKT residual {kkt:.2e} > tol={tol:.1e}; pass a "
            "larger tol to accept it."
        )
    for arr in (z, nu):
        arr.setflags(write=False)
    return MinNormSolution(
        coef=z, objective=float(obj), dual=nu, kkt_residual=float(kkt), norm=norm
    )


def min_norm(X: Any, y: Any, norm: str = "l2", *, tol: float = 1e-9) -> MinNormSolution:
    """Minimum-norm interpolant ``argmin ||z||  s.t.  X z = y`` (Yun et al. Section 5).

    Parameters
    ----------
    X : array_like of shape (N, d)
    y : array_like of shape (N,)
        Real regression targets.
    norm : {"l2", "l1", "dft-l1"}
        ``||z||_2`` (fully connected), ``||z||_1`` (diagonal), ``||F z||_1`` with the unitary
        DFT of :mod:`fastbias.references._dft` (full-width convolutional), each the
        small-initialization limit for depth-2 networks.
    tol : float, default 1e-9
        Largest accepted KKT residual.

    Returns
    -------
    MinNormSolution

    Raises
    ------
    ValueError
        ``X z = y`` has no solution, or bad arguments.
    SolverError
        The KKT residual exceeds ``tol``.

    Examples
    --------
    >>> from fastbias.references import min_norm
    >>> min_norm([[1.0, 2.0]], [1.0], norm="l1").coef
    array([0. , 0.5])
    """
    X, y = check_X_targets(X, y)
    check_choice(norm, "norm", ("l2", "l1", "dft-l1"))
    tol = check_positive(tol, "tol")
    Xs, c = unit_scale(X)
    if c != 1.0:  # data far from unit scale: solve X/c z' = y (exact), z = z' / c
        return rescale_solution(min_norm(Xs, y, norm, tol=tol), c)
    with single_blas_thread():
        return _min_norm(X, y, norm, tol)
