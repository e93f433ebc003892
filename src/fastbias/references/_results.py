"""Result types of the reference solvers (max margin in any norm, certificates, min norm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .l2_margin import MaxMarginSolution

__all__ = [
    "StationarityResult",
    "StationaryPoint",
    "MarginSolution",
    "MulticlassMarginSolution",
    "MinNormSolution",
]


@dataclass(frozen=True, eq=False)
class StationarityResult:
    """Sub-stationarity certificate of Gunasekar et al. (2018) eqs. (11)-(13).

    Attributes
    ----------
    residual : float
        Relative residual ``distance / ||g||``, where ``g`` is the gradient of
        ``sum_k |rho_k|^p`` on the support (its unit phases for p = 1; ``beta`` itself for
        ``"l2"``, the gradient of ``||beta||^2 / 2``). 0 for an exact stationary point.
    distance : float
        ``min_{alpha >= 0} dist(sum_n alpha_n y_n x_hat_n, Clarke subdifferential)``, measured
        in the transformed domain (unitary, so equal to the distance in beta-space).
    alpha : ndarray of shape (N,)
        The minimizing multipliers, zero off the active set, for the point scaled to minimum
        margin 1 and the objective ``sum_k |rho_k|^p`` (Gunasekar eq. 13, with its factor p).
    active : ndarray of int64
        Constraints with margin within ``tol`` of the minimum (after scaling).
    support : ndarray of int64
        Indices k with ``rho_k != 0`` (relative to ``zero_tol``): entries of beta for
        ``"l1"``/``"lp"``, bins of the full unitary spectrum for the DFT norms, entries of rho
        for ``"transformed"``, all of beta for ``"l2"``.
    scale : float
        ``beta * scale`` has minimum margin 1 (the point that was certified).
    norm : str
    p : float
    eq_multipliers : ndarray or None
        Free multipliers of equality constraints (min-norm problems, complex S), if any.
    """

    residual: float
    distance: float
    alpha: np.ndarray
    active: np.ndarray
    support: np.ndarray
    scale: float
    norm: str
    p: float
    eq_multipliers: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class StationaryPoint:
    """One first-order stationary point found by a non-convex (p < 1) solve.

    Attributes
    ----------
    coef : ndarray of shape (d,)
        beta, scaled to minimum margin 1.
    objective : float
        ``||rho||_p`` at coef.
    margin : float
        ``1 / objective``.
    certificate : StationarityResult
    start : int
        The start (0: uniform weights, i.e. the p = 1 solution; 1: the L2 SVM; >= 2: random
        weights) that reached it first.
    rho : ndarray
        The vector inside the norm at coef (as :attr:`MarginSolution.rho`).
    """

    coef: np.ndarray
    objective: float
    margin: float
    certificate: StationarityResult
    start: int
    rho: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class MarginSolution(MaxMarginSolution):
    """Max-margin solution in a norm other than L2 (a :class:`MaxMarginSolution`).

    ``coef`` minimizes (p = 1) or is a first-order stationary point (p < 1) of
    ``||rho||_p  s.t.  y_n x_n^T coef >= 1``; ``margin = 1 / ||rho||_p``;
    ``direction = coef / ||coef||_2``; ``support`` = active constraints; ``dual`` = the
    certificate's multipliers (for p = 1 ``sum(dual) = ||rho||_1``); ``kkt_residual`` = the
    larger of the primal infeasibility and the certificate's relative residual.

    Attributes
    ----------
    norm : str
        ``"l1"``, ``"dft-l1"``, ``"lp"``, ``"dft-lp"`` or ``"transformed"``.
    p : float
    objective : float
        ``||rho||_p`` (unitary DFT for the DFT norms).
    rho : ndarray
        The vector inside the norm: beta (``"l1"``, ``"lp"``), the full unitary spectrum
        ``F beta`` (DFT norms), rho with ``beta = S^T rho`` (``"transformed"``).
    certificate : StationarityResult
    stationary_points : tuple of StationaryPoint
        For p < 1: every distinct certified stationary point found, best objective first.
        Empty for the convex p = 1 problems.
    solver : str
        The convex solver used (``"highs"``, ``"clarabel"``).
    """

    norm: str = "l1"
    p: float = 1.0
    objective: float = float("nan")
    rho: np.ndarray | None = field(default=None, repr=False)
    certificate: StationarityResult | None = field(default=None, repr=False)
    stationary_points: tuple[StationaryPoint, ...] = field(default=(), repr=False)
    solver: str = ""

    def w_tilde(self, lr: float, w0: Any = None) -> np.ndarray:
        """Not defined: Soudry et al. Theorem 4 is about the L2 problem only."""
        raise ValueError(
            f"w_tilde (Soudry et al. Theorem 4, eq. 2.7) is defined for the L2 max-margin "
            f"problem; this solution is for norm={self.norm!r}."
        )


@dataclass(frozen=True, eq=False)
class MulticlassMarginSolution:
    """K-class hard-margin SVM, Soudry et al. (2018) eq. (4.1).

    Attributes
    ----------
    coef : ndarray of shape (K, d)
        ``W`` minimizing ``sum_k ||w_k||^2`` s.t. ``(w_{y_n} - w_k)^T x_n >= 1`` for k != y_n.
    margin : float
        ``1 / ||W||_F``.
    direction : ndarray of shape (K, d)
        ``W / ||W||_F``.
    classes : ndarray of shape (K,)
        The sorted class labels; row k of coef belongs to ``classes[k]``.
    support : ndarray of int64, shape (M, 2)
        Active pairs ``(n, k)`` (class index k) with ``(w_{y_n} - w_k)^T x_n = 1``.
    dual : ndarray of shape (N, K)
        KKT multipliers ``alpha_{n,k} >= 0`` (zero for k = y_n and inactive pairs), with
        ``w_k = sum_n (1[y_n = k] sum_j alpha_{n,j} - alpha_{n,k}) x_n``.
    kkt_residual : float
    status : str
    """

    coef: np.ndarray
    margin: float
    direction: np.ndarray
    classes: np.ndarray
    support: np.ndarray
    dual: np.ndarray
    kkt_residual: float
    status: str = "optimal"


@dataclass(frozen=True, eq=False)
class MinNormSolution:
    """Minimum-norm interpolant ``argmin ||z||  s.t.  X z = y`` (Yun et al. Section 5).

    Attributes
    ----------
    coef : ndarray of shape (d,)
    objective : float
        The norm of coef (``||z||_2``, ``||z||_1`` or ``||F z||_1`` with unitary F).
    dual : ndarray of shape (N,)
        Multipliers nu of ``X z = y``: ``X^T nu`` lies in the subdifferential of the norm at
        coef (``z = X^T nu`` for ``"l2"``, the gradient of ``||z||^2 / 2``).
    kkt_residual : float
        Larger of the relative interpolation error ``||X z - y|| / max(1, ||y||)`` and the
        certificate's relative residual.
    norm : str
    status : str
    """

    coef: np.ndarray
    objective: float
    dual: np.ndarray
    kkt_residual: float
    norm: str
    status: str = "optimal"
