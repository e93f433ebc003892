"""Exact L1 max-margin classifier (a linear program solved by HiGHS).

``min ||beta||_1  s.t.  y_n x_n^T beta >= 1`` is the limit direction of gradient descent on a
depth-2 diagonal network (Gunasekar et al. 2018, Lemma 6 with L = 2; Yun et al. 2021,
Corollary 2 with L = 2). It is solved as its dual LP
``max 1^T alpha  s.t.  |Z^T alpha| <= 1, alpha >= 0`` by HiGHS's dual simplex with column
generation, then the vertex is recomputed exactly from its active constraints and support
(``Z_AS beta_S = 1``, ``Z_AS^T alpha_A = sign(beta_S)``) and certified (eq. 12).
"""

from __future__ import annotations

from typing import Any

from fastbias._blas import single_blas_thread
from fastbias._validation import check_positive, check_X_y

from ._convex import convex_margin
from ._problem import l1_problem
from ._results import MarginSolution

__all__ = ["max_margin_l1"]


def max_margin_l1(X: Any, y: Any = None, *, tol: float = 1e-9) -> MarginSolution:
    """L1 hard-margin separator ``argmin ||beta||_1 s.t. y_n x_n^T beta >= 1``.

    Parameters
    ----------
    X, y : array_like
        Samples (N, d) and binary labels (``None``: all +1).
    tol : float, default 1e-9
        Largest accepted KKT residual (certificate of Gunasekar eq. 12 and feasibility).

    Returns
    -------
    MarginSolution
        ``margin = 1 / ||coef||_1`` (the L-infinity geometric margin).

    Raises
    ------
    NotSeparableError
        The LP is infeasible (its dual is unbounded).
    SolverError
        The certified KKT residual exceeds ``tol``.
    """
    X, y = check_X_y(X, y)
    tol = check_positive(tol, "tol")
    Z = y[:, None] * X
    with single_blas_thread():
        return convex_margin(l1_problem(Z, 1.0), Z, tol)
