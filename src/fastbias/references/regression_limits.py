"""Yun et al. (2021) Corollaries 5, 6 and 7: Theorem 5's regression limit for diagonal networks,
full-width convolutional networks on even data, and deep matrix sensing with commuting
symmetric sensors, each through :func:`fastbias.references.qnorm.q_minimizer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fastbias._validation import check_X_targets

from .lemma4 import check_depth
from .qnorm import QMinimizer, check_eta, q_minimizer

__all__ = [
    "diagonal_regression_limit",
    "conv_even_regression_limit",
    "MatrixSensingLimit",
    "matrix_sensing_limit",
]

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
    L = check_depth(depth)
    F = np.fft.fft(np.eye(d)) / math.sqrt(d)  # symmetric unitary DFT matrix
    eta = (F @ w).real
    S = d ** ((L - 1) / 2) * F.real
    sol = q_minimizer(X, y, L, alpha, check_eta(eta, d, "F w_bar"), S, tol=tol)
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
