"""Yun et al. (2021) Theorem 6: closed-form limit points of gradient flow on a 2-layer linear
tensor network fitted to one data point (:func:`two_layer_limit_point`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbias._validation import check_positive
from fastbias.exceptions import SolverError

__all__ = ["TwoLayerLimitPoint", "two_layer_limit_point"]

# ----------------------------------------------------------------------------------------
# Theorem 6: 2-layer tensor network, one data point
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TwoLayerLimitPoint:
    """Limit points of Yun et al. (2021) Theorem 6.

    Attributes
    ----------
    layers : list of 2 ndarray
        ``v_1^inf, v_2^inf`` (flat, the model's C-order layout).
    coef : ndarray of shape (d,)
        ``beta(v_1^inf, v_2^inf)``, the limit of the linear coefficients.
    nu : float
        ``g^{-1}(y / alpha^2) = -int_0^inf r``.
    singular_values : ndarray
        ``s`` of the compact SVD ``M(x) = U_1 diag(s) U_2^T``.
    condition : float
        Theorem 6's ``lambda = min_j [U_1^T v1_bar]_j^2 - [U_2^T v2_bar]_j^2`` in the computed
        SVD basis (with repeated singular values it depends on the basis within each block;
        a positive value in any basis suffices for the loss to go to zero).
    theorem : str
    """

    layers: list[np.ndarray]
    coef: np.ndarray
    nu: float
    singular_values: np.ndarray
    condition: float
    theorem: str = "Yun et al. 2021, Theorem 6"


def _solve_increasing(g, dg, target: float, scale: float = 1.0) -> float:
    """Root of a strictly increasing smooth ``g(nu) = target``: bracket, then safeguarded Newton.

    The bracket is grown geometrically from ``[-scale, scale]``; inside it Newton steps that
    leave the bracket are replaced by bisection (rtsafe, Numerical Recipes 9.4).
    """
    lo, hi = -scale, scale
    for _ in range(200):
        if g(lo) <= target:
            break
        lo *= 2.0
    else:
        raise SolverError("could not bracket g^{-1}(y / alpha^2) from below.")
    for _ in range(200):
        if g(hi) >= target:
            break
        hi *= 2.0
    else:
        raise SolverError("could not bracket g^{-1}(y / alpha^2) from above.")
    x = 0.5 * (lo + hi)
    for _ in range(200):
        fx = g(x) - target
        if fx == 0.0:
            return x
        if fx > 0:
            hi = x
        else:
            lo = x
        d = dg(x)
        xn = x - fx / d if d > 0 else 0.5 * (lo + hi)
        if not lo < xn < hi:
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 4e-16 * max(1.0, abs(xn)) or hi - lo <= 4e-16 * max(1.0, abs(x)):
            return xn
        x = xn
    return x


def two_layer_limit_point(
    model: Any, x: Any, y: float, init: Any, alpha: float = 1.0
) -> TwoLayerLimitPoint:
    """Limit point of a 2-layer linear tensor network fitted to one point (Theorem 6).

    Yun et al. (2021) Theorem 6: with the compact SVD ``M(x) = U_1 diag(s) U_2^T``,
    ``eta_1 = U_1^T v1_bar``, ``eta_2 = U_2^T v2_bar`` and squared loss, gradient flow from
    ``v_l(0) = alpha v_l_bar`` converges to

        v_1 = alpha U_1 (eta_1 cosh(nu s) + eta_2 sinh(nu s)) + alpha (I - U_1 U_1^T) v1_bar,
        v_2 = alpha U_2 (eta_1 sinh(nu s) + eta_2 cosh(nu s)) + alpha (I - U_2 U_2^T) v2_bar,

    with ``nu = g^{-1}(y / alpha^2)`` and the strictly increasing
    ``g(nu) = sum_j s_j ((eta_1j^2 + eta_2j^2)/2 sinh(2 s_j nu) + eta_1j eta_2j cosh(2 s_j nu))``
    (solved by a bracketed, safeguarded Newton iteration). Any 2-layer network works: fully
    connected, diagonal, convolutional with any filter size, or a ``Tensor``.

    Parameters
    ----------
    model : fastbias.models.Model of depth 2, or ndarray of shape (d, k_1, k_2)
        The network or its data tensor stack (:func:`fastbias.references.data_tensor_stack`).
    x : array_like of shape (d,)
    y : float
        Target.
    init : sequence of 2 arrays
        Initial directions ``v1_bar, v2_bar`` (layer shapes or flat).
    alpha : float, default 1.0
        Initialization scale: ``v_l(0) = alpha v_l_bar``.

    Returns
    -------
    TwoLayerLimitPoint

    Raises
    ------
    ValueError
        Bad shapes, ``M(x) = 0``, or ``y / alpha^2`` outside the range of ``g`` (only when
        ``eta_1 = -eta_2`` or ``eta_1 = eta_2`` exactly: gradient flow then cannot fit ``y``).
    """
    from .tensor_svd import _as_stack

    alpha = check_positive(alpha, "alpha")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        raise ValueError(
            f"Theorem 6 covers a single data point; got {x.shape[0]} points. With several "
            "points use q_minimizer (Theorem 5) when the network is orthogonally decomposable."
        )
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"x must be one finite data point (a 1-D vector); got shape {x.shape}.")
    try:
        yv = float(np.asarray(y, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"y must be one real target; got {y!r}.") from None
    if not np.isfinite(yv):
        raise ValueError("y must be finite.")
    stack = _as_stack(model, x.shape[0])
    if stack.ndim != 3:
        raise ValueError(
            f"Theorem 6 is for 2-layer networks; the data tensor has order {stack.ndim - 1}."
        )
    k1, k2 = stack.shape[1:]
    init = list(init)
    if len(init) != 2:
        raise ValueError(f"init must hold 2 layers; got {len(init)}.")
    v1b, v2b = (np.asarray(v, dtype=np.float64).ravel() for v in init)
    if v1b.shape[0] != k1 or v2b.shape[0] != k2:
        raise ValueError(
            f"init layers have {v1b.shape[0]} and {v2b.shape[0]} entries; expected {k1}, {k2}."
        )
    if not (np.all(np.isfinite(v1b)) and np.all(np.isfinite(v2b))):
        raise ValueError("init contains NaN or inf.")
    Mx = np.tensordot(x, stack, axes=(0, 0))
    U1, s, V2t = np.linalg.svd(Mx, full_matrices=False)
    if s.size == 0 or s[0] == 0.0:
        raise ValueError("M(x) = 0: the network output is 0 for this x, so y cannot be fit.")
    m = int(np.sum(s > 1e-12 * s[0]))
    U1, s, U2 = U1[:, :m], s[:m], V2t[:m].T
    e1, e2 = U1.T @ v1b, U2.T @ v2b
    # g(nu) = sum_j s_j/2 [(e1+e2)_j^2/2 e^{2 s_j nu} - (e1-e2)_j^2/2 e^{-2 s_j nu}] (Appendix G)
    cp, cm = 0.5 * (e1 + e2) ** 2, 0.5 * (e1 - e2) ** 2
    cond = float(np.min(e1**2 - e2**2))
    target = yv / alpha**2
    if (target >= 0 and not np.any(cp > 0)) or (target <= 0 and not np.any(cm > 0)):
        raise ValueError(
            f"y / alpha^2 = {target:.3e} is outside the range of g(nu) of Theorem 6 for this "
            f"initialization (lambda = {cond:.3e}; U_1^T v1_bar = {'-' if target >= 0 else ''}"
            "U_2^T v2_bar): gradient flow cannot fit y from it."
        )

    def g(nu: float) -> float:
        with np.errstate(over="ignore"):
            up = np.where(cp > 0, cp * np.exp(2 * s * nu), 0.0)
            down = np.where(cm > 0, cm * np.exp(-2 * s * nu), 0.0)
        return float(np.sum(0.5 * s * (up - down)))

    def dg(nu: float) -> float:
        with np.errstate(over="ignore"):
            up = np.where(cp > 0, cp * np.exp(2 * s * nu), 0.0)
            down = np.where(cm > 0, cm * np.exp(-2 * s * nu), 0.0)
        return float(np.sum(s * s * (up + down)))

    nu = _solve_increasing(g, dg, target, 1.0 / s[0])
    ch, sh = np.cosh(nu * s), np.sinh(nu * s)
    v1 = alpha * (U1 @ (e1 * ch + e2 * sh)) + alpha * (v1b - U1 @ e1)
    v2 = alpha * (U2 @ (e1 * sh + e2 * ch)) + alpha * (v2b - U2 @ e2)
    coef = np.einsum("jab,a,b->j", stack, v1, v2)
    return TwoLayerLimitPoint(
        layers=[v1, v2], coef=coef, nu=float(nu), singular_values=s, condition=cond
    )
