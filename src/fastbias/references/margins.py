"""``max_margin``: the max-margin problem of every architecture in the papers, one entry point.

Each problem is ``min ||rho||_p  s.t.  y_n x_n^T beta >= 1`` for all n, and is the limit
direction of gradient descent on the model named:

* ``"l2"``: ``rho = beta``, p = 2 (Soudry eq. 2.4) -- linear and fully connected networks
  (Gunasekar Theorem 1);
* ``"l1"``: ``rho = beta``, p = 1 -- depth-2 diagonal networks;
* ``"dft-l1"``: ``rho = F beta`` (Gunasekar eq. 9) -- depth-2 full-width convolutional
  networks (Theorem 2);
* ``"lp"``: ``rho = beta``, p = 2/L (Yun Corollary 2) -- depth-L diagonal networks;
* ``"dft-lp"``: ``rho = F beta``, p = 2/L (Gunasekar eq. 10, Yun Corollary 3) -- depth-L
  convolutional networks;
* ``"transformed"``: ``beta = S^T rho`` (Yun Theorem 2) -- orthogonally decomposable tensor
  networks;
* ``multiclass=True``: ``min sum_k ||w_k||^2`` with class margins (Soudry eq. 4.1) --
  K-class linear models with cross-entropy.

F is the unitary DFT (:mod:`fastbias.references._dft`). Every solution is normalized to
minimum margin 1: ``coef`` is the minimizer, ``margin = 1 / ||rho||_p``,
``direction = coef / ||coef||_2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbias._blas import single_blas_thread
from fastbias._validation import check_positive, check_positive_int, check_X_y

from ._convex import convex_margin
from ._results import MarginSolution, MulticlassMarginSolution
from ._scale import rescale_solution, unit_scale
from .l2_margin import MaxMarginSolution
from .l2_margin import max_margin as _l2_max_margin
from .lp_margin import irl1_margin
from .multiclass import max_margin_multiclass
from .stationarity import build_problem, check_norm_p

__all__ = ["max_margin"]

_DEFAULT_TOL = {"l2": 1e-10, "convex": 1e-9, "stationary": 1e-8}


def max_margin(
    X: Any,
    y: Any = None,
    norm: str = "l2",
    p: float | None = None,
    S: Any = None,
    multiclass: bool = False,
    starts: int = 8,
    seed: int | None = 0,
    *,
    tol: float | None = None,
) -> MaxMarginSolution | MarginSolution | MulticlassMarginSolution:
    """Max-margin separator of ``X, y`` in the norm of a network's implicit bias.

    Parameters
    ----------
    X : array_like of shape (N, d)
        Samples.
    y : array_like of shape (N,), optional
        Binary labels (``None``: all +1, labels folded into X as in the papers); the class
        labels when ``multiclass=True``.
    norm : {"l2", "l1", "dft-l1", "lp", "dft-lp", "transformed"}, default "l2"
        See the module table. ``"l2"`` is the exact solver of Soudry eq. (2.4).
    p : float, optional
        Exponent in (0, 1] for ``"lp"``, ``"dft-lp"`` and ``"transformed"`` (p = 2/L for a
        depth-L network). p = 1 is the convex problem.
    S : array_like of shape (m, d), optional
        For ``"transformed"``: Yun et al.'s S (real or complex, full column rank).
    multiclass : bool, default False
        Solve the K-class SVM of Soudry eq. (4.1) (``norm="l2"`` only).
    starts : int, default 8
        Number of IRL1 starts for p < 1.
    seed : int or None, default 0
        Seed of the random starts.
    tol : float, optional
        Largest accepted KKT / certificate residual (default 1e-10 for ``"l2"``, 1e-9 for the
        convex p = 1 problems, 1e-8 for stationary points with p < 1).

    Returns
    -------
    MaxMarginSolution
        For ``"l2"`` (exactly :func:`fastbias.references.l2_margin.max_margin`).
    MarginSolution
        For the other norms (a MaxMarginSolution with ``norm``, ``p``, ``objective``, ``rho``,
        ``certificate`` and, for p < 1, ``stationary_points``; status ``"optimal"`` for
        p = 1, ``"stationary"`` for p < 1).
    MulticlassMarginSolution
        For ``multiclass=True``.

    Raises
    ------
    NotSeparableError
        The data have no homogeneous separator.
    ValueError
        Unknown norm, p outside (0, 1], missing or rank-deficient (singular) S, bad data.
    SolverError
        No solution certified to ``tol``.

    Examples
    --------
    Yun et al. (2021) Section 6, two points ``(1, 2) -> +1`` and ``(0, -3) -> -1``:

    >>> import fastbias as fb
    >>> X, y = [[1.0, 2.0], [0.0, -3.0]], [1, -1]
    >>> fb.max_margin(X, y).coef.round(6)
    array([0.2, 0.4])
    >>> fb.max_margin(X, y, norm="l1").coef.round(6)
    array([0. , 0.5])
    >>> fb.max_margin(X, y, norm="dft-l1").coef.round(6)
    array([0.333333, 0.333333])
    """
    if not isinstance(multiclass, (bool, np.bool_)):
        raise ValueError(f"multiclass must be True or False; got {multiclass!r}.")
    if multiclass:
        if norm != "l2" or p is not None or S is not None:
            raise ValueError(
                "multiclass=True is the L2 K-class SVM of Soudry eq. (4.1) (norm='l2', no p or "
                f"S); got norm={norm!r}, p={p!r}, S {'given' if S is not None else 'None'}."
            )
        Xc, _ = check_X_y(X, None)
        Xs, c = unit_scale(Xc)
        sol = max_margin_multiclass(Xs, y, tol=_DEFAULT_TOL["l2"] if tol is None else tol)
        return rescale_solution(sol, c)  # (the identity for data near unit scale)
    norm, pf = check_norm_p(norm, p)
    if S is not None and norm != "transformed":
        raise ValueError(f"S is only used with norm='transformed'; got norm={norm!r}.")
    X, y = check_X_y(X, y)
    Xs, c = unit_scale(X)
    if c != 1.0:  # data far from unit scale: solve on X / c (exact), map the solution back
        sol = max_margin(Xs, y, norm, p, S, False, starts, seed, tol=tol)
        return rescale_solution(sol, c, X)
    if norm == "l2":
        return _l2_max_margin(X, y, tol=_DEFAULT_TOL["l2"] if tol is None else tol)
    starts = check_positive_int(starts, "starts")
    X, y = check_X_y(X, y)
    Z = y[:, None] * X
    convex = pf == 1.0
    tol = _DEFAULT_TOL["convex" if convex else "stationary"] if tol is None else tol
    tol = check_positive(tol, "tol")
    with single_blas_thread():
        return _solve(X, y, Z, norm, pf, S, starts, seed, tol)


def _solve(X, y, Z, norm, p, S, starts, seed, tol) -> MarginSolution:
    prob = build_problem(norm, p, Z, S)
    if p == 1.0:
        return convex_margin(prob, Z, tol)
    try:
        l2_beta = np.asarray(_l2_max_margin(X, y).coef)
    except ValueError:  # not separable: let the IRL1 solve raise the error with its wording
        l2_beta = None
    return irl1_margin(prob, Z, starts, seed, tol, l2_beta)
