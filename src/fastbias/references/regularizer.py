"""The implicit regularizer ``R_P(beta) = min ||w||^2 s.t. P(w) = beta`` (Gunasekar et al. 2018).

Gunasekar et al. (2018) eq. (15): gradient descent on a homogeneous parameterization
``beta = P(w)`` is biased towards small ``R_P``, and Section 5 computes it in closed form:

* Lemma 5, fully connected networks of depth L: ``R(beta) = L ||beta||_2^{2/L}``
  (:func:`fc_regularizer`);
* Lemma 6, diagonal networks: ``R(beta) = L ||beta||_{2/L}^{2/L} = L sum_j |beta_j|^{2/L}``
  (:func:`diagonal_regularizer`);
* Lemma 7, full-width convolutional networks: an ``l_{2/L}`` quasi-norm of the DFT of beta
  (:func:`conv_regularizer`; see its note on the DFT normalization).

:func:`implicit_regularizer` computes ``R_P`` numerically for any fastbias model from its
predictor and vector-Jacobian product alone (an augmented Lagrangian from several starts,
then Gauss-Newton projection onto ``P(w) = beta``), independently of the closed forms; the
tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fastbias._validation import check_positive, check_positive_int
from fastbias.exceptions import SolverError

__all__ = [
    "fc_regularizer",
    "diagonal_regularizer",
    "conv_regularizer",
    "ImplicitRegularizer",
    "implicit_regularizer",
]


def _check_beta(beta: Any) -> np.ndarray:
    try:
        b = np.asarray(beta, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("beta must be a real vector.") from None
    if b.ndim != 1 or b.size == 0:
        raise ValueError(f"beta must be a non-empty 1-D vector; got shape {b.shape}.")
    if not np.all(np.isfinite(b)):
        raise ValueError("beta contains NaN or inf; it must be finite.")
    return b


def _check_L(L: Any) -> int:
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L must be an integer >= 1 (the depth); got {L!r}.")
    return int(L)


def fc_regularizer(beta: Any, L: int) -> float:
    """Gunasekar et al. (2018) Lemma 5: ``R_full(beta) = L ||beta||_2^{2/L}``.

    Parameters
    ----------
    beta : array_like of shape (d,)
    L : int
        Depth, ``>= 1``.

    Returns
    -------
    float
    """
    b, L = _check_beta(beta), _check_L(L)
    return float(L * np.linalg.norm(b) ** (2.0 / L))


def diagonal_regularizer(beta: Any, L: int) -> float:
    """Gunasekar et al. (2018) Lemma 6: ``R_diag(beta) = L ||beta||_{2/L}^{2/L}``.

    That is ``L sum_j |beta_j|^{2/L}`` (the 2/L quasi-norm raised to 2/L).

    Parameters
    ----------
    beta : array_like of shape (d,)
    L : int
        Depth, ``>= 1``.

    Returns
    -------
    float
    """
    b, L = _check_beta(beta), _check_L(L)
    return float(L * np.sum(np.abs(b) ** (2.0 / L)))


def conv_regularizer(beta: Any, L: int) -> float:
    """Gunasekar et al. (2018) Lemma 7 for full-width convolutional networks of depth L.

    With Gunasekar's DFT ``beta_hat[k] = sum_p beta[p] exp(-2 pi i p k / d)`` (unnormalized,
    ``numpy.fft.fft``), Lemma 3 gives ``beta_hat = w_hat_1 ... w_hat_L`` and Parseval
    ``||w||_2^2 = ||w_hat||_2^2 / d``; AM-GM per frequency then gives::

        R_conv(beta) = (L / d) sum_k |beta_hat[k]|^{2/L}
                     = L d^{1/L - 1} ||F beta||_{2/L}^{2/L}   (F the unitary DFT).

    Note: Lemma 7 as printed, ``L ||beta_hat||_{2/L}^{2/L}``, combines Lemma 3 (which holds for
    the unnormalized DFT) with ``||beta||_2 = ||beta_hat||_2`` (which holds for the unitary one);
    it is exact only if ``beta_hat`` is taken as ``d^{-L/2} fft(beta)``, and otherwise off by
    the factor above. The numerical :func:`implicit_regularizer` of
    ``fastbias.models.Convolutional(L)`` agrees with this function (tests).

    Parameters
    ----------
    beta : array_like of shape (d,)
    L : int
        Depth, ``>= 1``.

    Returns
    -------
    float
    """
    b, L = _check_beta(beta), _check_L(L)
    return float(L / b.size * np.sum(np.abs(np.fft.fft(b)) ** (2.0 / L)))


@dataclass(frozen=True, eq=False)
class ImplicitRegularizer:
    """Numerical ``R_P(beta) = min ||w||^2 s.t. P(w) = beta`` (Gunasekar et al. 2018, eq. 15).

    Attributes
    ----------
    value : float
        The smallest ``||w||^2`` found.
    params : list of ndarray
        A minimizer ``w`` (one array per layer, the model's shapes).
    constraint_residual : float
        ``||P(w) - beta|| / ||beta||``.
    stationarity : float
        KKT residual ``min_lambda ||2 w + J_P(w)^T lambda|| / ||2 w||`` (first-order
        optimality on the constraint set).
    values : ndarray
        Local optima reached from every start (sorted ascending); the problem is non-convex,
        the smallest is returned.
    """

    value: float
    params: list[np.ndarray]
    constraint_residual: float
    stationarity: float
    values: np.ndarray


def _jacobian_T(model: Any, shapes: list, theta: np.ndarray, d: int) -> np.ndarray:
    """``J_P(theta)^T`` (n_params x d) from d vector-Jacobian products."""
    params = model.unflatten(theta, d)
    cols = []
    for j in range(d):
        e = np.zeros(d)
        e[j] = 1.0
        cols.append(model.flatten(model.vjp(params, e)))
    return np.stack(cols, axis=1)


def _project(
    P: Any, model: Any, shapes: list, theta: np.ndarray, target: np.ndarray, d: int, steps: int
) -> np.ndarray:
    """Damped Gauss-Newton ``theta <- theta - J^+ (P(theta) - target)`` (minimum-norm steps)."""
    c = P(theta) - target
    cn = float(np.linalg.norm(c))
    for _ in range(steps):
        if cn <= 1e-15:
            break
        Jt = _jacobian_T(model, shapes, theta, d)
        step = Jt @ np.linalg.lstsq(Jt.T @ Jt, c, rcond=None)[0]
        t = 1.0
        while t > 1e-6:
            cand = theta - t * step
            c_new = P(cand) - target
            if float(np.linalg.norm(c_new)) < cn:
                break
            t *= 0.5
        else:
            break
        theta, c, cn = cand, c_new, float(np.linalg.norm(c_new))
    return theta


def _manifold_newton(
    P: Any,
    vjp: Any,
    model: Any,
    shapes: list,
    theta: np.ndarray,
    target: np.ndarray,
    d: int,
    max_iter: int,
) -> np.ndarray:
    """Projected Newton for ``min ||w||^2 s.t. P(w) = target`` from a feasible ``w``.

    Each step solves the reduced Newton system ``Z^T W Z s = -Z^T 2w`` on the null space Z of
    ``J_P(w)``, with ``W = 2I + sum_i lambda_i Hess P_i(w)`` the Hessian of the Lagrangian
    (least-squares multipliers; central differences of the exact vjp) shifted to be positive
    definite, moves to ``w + t Z s`` and projects back onto the constraint by Gauss-Newton
    (a retraction); ``t`` halves until ``||w||^2`` decreases. Quadratic convergence at
    nondegenerate minima; the symmetry directions of the parameterization (e.g. rotations of
    hidden units) carry no gradient and are left alone.
    """
    n = theta.size
    for _ in range(max_iter):
        Jt = _jacobian_T(model, shapes, theta, d)
        g = 2.0 * theta
        lam = np.linalg.lstsq(Jt, -g, rcond=None)[0]
        U, sv, _ = np.linalg.svd(Jt, full_matrices=True)
        rank = int(np.sum(sv > 1e-12 * (sv[0] if sv.size else 0.0)))
        Z = U[:, rank:]
        if Z.shape[1] == 0:
            break
        gr = Z.T @ g
        if float(np.linalg.norm(gr)) <= 1e-14 * max(1.0, float(np.linalg.norm(g))):
            break
        eps = 1e-6 * max(1.0, float(np.max(np.abs(theta))))
        W = np.empty((n, n))
        for k in range(n):
            e = np.zeros(n)
            e[k] = eps
            W[:, k] = (vjp(theta + e, lam) - vjp(theta - e, lam)) / (2.0 * eps)
        Wr = Z.T @ (0.5 * (W + W.T) + 2.0 * np.eye(n)) @ Z
        ev, V = np.linalg.eigh(Wr)
        ev = np.maximum(ev, 1e-3 * max(1.0, float(ev[-1])))  # modified Newton
        p = Z @ (V @ (-(V.T @ gr) / ev))
        f0 = float(theta @ theta)
        t = 1.0
        accepted = False
        while t > 1e-8:
            cand = _project(P, model, shapes, theta + t * p, target, d, steps=6)
            if float(cand @ cand) < f0 and float(np.linalg.norm(P(cand) - target)) <= 1e-12:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        theta = cand
    return theta


def _kkt_stationarity(model: Any, shapes: list, theta: np.ndarray, d: int) -> float:
    Jt = _jacobian_T(model, shapes, theta, d)
    g = 2.0 * theta
    lam = np.linalg.lstsq(Jt, -g, rcond=None)[0]
    return float(np.linalg.norm(g + Jt @ lam) / max(float(np.linalg.norm(g)), 1e-300))


def implicit_regularizer(
    model: Any,
    beta: Any,
    *,
    n_starts: int = 6,
    seed: int | None = 0,
    tol: float = 1e-9,
    max_iter: int = 200,
) -> ImplicitRegularizer:
    """``R_P(beta) = min ||w||^2`` subject to ``P(w) = beta``, computed numerically.

    Gunasekar et al. (2018) eq. (15); closed forms in Lemmas 5-7 (:func:`fc_regularizer`,
    :func:`diagonal_regularizer`, :func:`conv_regularizer`). Uses only the model's NumPy
    ``predictor``, ``vjp`` and ``shapes``, so it works for every parameterization, including
    ``Tensor`` networks and convolutions with small filters, where no closed form is known.

    Algorithm: ``P`` is homogeneous of degree L = ``model.depth``, so
    ``R(beta) = ||beta||^{2/L} R(beta / ||beta||)`` and the problem is solved for a unit
    ``beta``. Each of ``n_starts`` seeded Gaussian starts is moved onto ``P(w) = beta`` by
    damped Gauss-Newton steps ``w <- w - J^+ c`` (``c = P(w) - beta``), then a projected
    Newton method on the constraint manifold (reduced Hessian of the Lagrangian from central
    differences of the exact ``vjp``, made positive definite; Gauss-Newton retraction;
    backtracking on ``||w||^2``) drives the KKT residual ``min_lambda ||2 w + J^T lambda||``
    to rounding level. The smallest value over the starts is returned with its KKT residual.

    Parameters
    ----------
    model : fastbias.models.Model or str
    beta : array_like of shape (d,)
    n_starts : int, default 6
    seed : int or None, default 0
    tol : float, default 1e-9
        Accepted relative constraint residual and the L-BFGS gradient tolerance scale.
    max_iter : int, default 200
        Newton iterations per start.

    Returns
    -------
    ImplicitRegularizer

    Raises
    ------
    ValueError
        Bad ``beta`` or model.
    SolverError
        No start reached ``P(w) = beta`` (``beta`` may be outside the model's range, e.g. a
        ``Tensor`` whose data tensor does not reach every direction).
    """
    from fastbias.models import get_model

    mdl = get_model(model)
    b = _check_beta(beta)
    n_starts = check_positive_int(n_starts, "n_starts")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive(tol, "tol")
    d = b.size
    shapes = mdl.shapes(d)
    L = int(mdl.depth)
    nb = float(np.linalg.norm(b))
    if nb == 0.0:
        zeros = [np.zeros(s) for s in shapes]
        return ImplicitRegularizer(0.0, zeros, 0.0, 0.0, np.zeros(1))
    bu = b / nb
    scale = nb ** (1.0 / L)  # w(beta) = scale * w(beta / ||beta||)
    rng = np.random.default_rng(seed)
    n_par = mdl.n_params(d)

    def P(theta: np.ndarray) -> np.ndarray:
        return np.asarray(mdl.predictor(mdl.unflatten(theta, d)), dtype=np.float64)

    def vjp(theta: np.ndarray, G: np.ndarray) -> np.ndarray:
        return mdl.flatten(mdl.vjp(mdl.unflatten(theta, d), G))

    results = []
    for _ in range(n_starts):
        theta = rng.standard_normal(n_par)
        p0 = float(np.linalg.norm(P(theta)))
        if p0 > 0:
            theta *= p0 ** (-1.0 / L)
        theta = _project(P, mdl, shapes, theta, bu, d, steps=50)
        theta = _manifold_newton(P, vjp, mdl, shapes, theta, bu, d, max_iter)
        theta = _project(P, mdl, shapes, theta, bu, d, steps=8)
        c = float(np.linalg.norm(P(theta) - bu))
        results.append((float(theta @ theta), theta.copy(), c))

    feasible = [r for r in results if r[2] <= tol]
    if not feasible:
        best_c = min(r[2] for r in results)
        raise SolverError(
            f"no start reached P(w) = beta: smallest relative constraint residual {best_c:.2e} "
            f"> tol={tol:.1e}. beta may be outside the range of {mdl!r}."
        )
    value, theta, c = min(feasible, key=lambda r: r[0])
    stat = _kkt_stationarity(mdl, shapes, theta, d)
    params = [np.array(p) * scale for p in mdl.unflatten(theta, d)]
    return ImplicitRegularizer(
        value=float(value * scale**2),
        params=params,
        constraint_residual=float(c),
        stationarity=stat,
        values=np.sort([r[0] * scale**2 for r in feasible]),
    )
