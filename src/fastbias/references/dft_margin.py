"""DFT-domain L1 max-margin classifier (Gunasekar et al. 2018, Theorem 2, eq. 9).

``min ||F beta||_1  s.t.  y_n x_n^T beta >= 1`` with the unitary DFT F of :mod:`._dft` (the sum
of the complex magnitudes of the full spectrum) is the limit direction of gradient descent on a
depth-2 full-width linear convolutional network. For real beta the spectrum is conjugate
symmetric, so in the real Fourier coordinates ``c = Q^T beta`` the objective is
``|c_0| + sqrt(2) sum_k ||(c_{2k-1}, c_{2k})||_2 (+ |c_{d-1}|, d even)``: a second-order cone
program, solved by Clarabel and then polished by Newton's method on its KKT system and
certified (eqs. 11-12).
"""

from __future__ import annotations

from typing import Any

from fastbias._blas import single_blas_thread
from fastbias._validation import check_positive, check_X_y

from ._convex import convex_margin
from ._problem import dft_problem
from ._results import MarginSolution

__all__ = ["max_margin_dft_l1"]


def max_margin_dft_l1(X: Any, y: Any = None, *, tol: float = 1e-9) -> MarginSolution:
    """DFT-domain L1 hard-margin separator ``argmin ||F beta||_1 s.t. y_n x_n^T beta >= 1``.

    Parameters
    ----------
    X, y : array_like
        Samples (N, d) and binary labels (``None``: all +1).
    tol : float, default 1e-9
        Largest accepted KKT residual.

    Returns
    -------
    MarginSolution
        ``rho`` is the full unitary spectrum ``F coef``; ``margin = 1 / ||F coef||_1``.

    Raises
    ------
    NotSeparableError, SolverError
    """
    X, y = check_X_y(X, y)
    tol = check_positive(tol, "tol")
    Z = y[:, None] * X
    with single_blas_thread():
        return convex_margin(dft_problem(Z, 1.0), Z, tol)
