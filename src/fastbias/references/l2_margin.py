"""Exact L2 hard-margin (homogeneous, no bias) solver and the GD residual limit.

Notation follows Soudry et al. (2018), "The implicit bias of gradient descent on separable
data", Section 2, with the labels folded into the samples: ``z_n = y_n x_n``.

* eq. (2.4): ``w_hat = argmin ||w||^2  s.t.  z_n^T w >= 1`` for all n (hard-margin SVM
  without bias). Gradient descent on an exponentially-tailed loss converges in direction to
  ``w_hat`` (Theorem 3), ``w(t) = w_hat log t + rho(t)``.
* eq. (2.6): KKT conditions, ``w_hat = sum_n alpha_n z_n`` with ``alpha_n >= 0`` and
  ``alpha_n = 0`` unless ``z_n^T w_hat = 1``.
* eq. (2.7), Theorem 4: when the support vectors span the data, ``rho(t) -> w_tilde`` with
  ``eta exp(-z_n^T w_tilde) = alpha_n`` for n in the support set S.

The solver is exact (finite active-set methods plus a direct linear-algebra polish), not an
iterative first-order method, so it can serve as the reference the GD runs are measured
against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastbias._blas import single_blas_thread
from fastbias._validation import check_positive, check_vector, check_X_y
from fastbias.exceptions import NotSeparableError, SolverError

__all__ = ["MaxMarginSolution", "max_margin", "w_tilde"]


# scipy is imported on first use, so `import fastbias` stays fast (the CLI's start-up time).
def nnls(*args, **kwargs):
    from scipy.optimize import nnls as _nnls

    return _nnls(*args, **kwargs)


def linprog(*args, **kwargs):
    from scipy.optimize import linprog as _linprog

    return _linprog(*args, **kwargs)


def qr(*args, **kwargs):
    from scipy.linalg import qr as _qr

    return _qr(*args, **kwargs)


def solve_triangular(*args, **kwargs):
    from scipy.linalg import solve_triangular as _solve_triangular

    return _solve_triangular(*args, **kwargs)


_EPS = float(np.finfo(np.float64).eps)
_NOT_SEPARABLE = "X, y are not linearly separable by a homogeneous (no-bias) linear classifier: "
_BIAS_HINT = (
    " If a separating hyperplane through the origin is not what you want, append a constant-1 "
    "feature to X so the bias becomes part of w."
)
# Points whose functional margin z_n^T w_hat is within this of 1 are support vectors.
_SUPPORT_ATOL = 1e-9
# NNLS residual below which the least-distance problem is borderline or infeasible: the
# residual norm satisfies ||r||^2 = 1 / (1 + ||w||^2) for the scaled problem, so this
# means a scaled ||w|| above ~1e4.
_BORDERLINE_R2 = 1e-8


@dataclass(frozen=True, eq=False)
class MaxMarginSolution:
    """Solution of the homogeneous hard-margin problem, Soudry et al. (2018) eq. (2.4).

    Attributes
    ----------
    coef : ndarray of shape (d,)
        ``w_hat = argmin ||w||^2 s.t. y_n x_n^T w >= 1`` (eq. 2.4).
    margin : float
        Geometric margin ``1 / ||w_hat||``.
    direction : ndarray of shape (d,)
        Unit vector ``w_hat / ||w_hat||``, the limit direction of GD (Theorem 3).
    support : ndarray of int64
        Sorted indices n with ``y_n x_n^T w_hat == 1`` (up to 1e-9): the set S of eq. (2.6).
    dual : ndarray of shape (N,)
        KKT multipliers ``alpha`` of eq. (2.6): ``alpha >= 0``, zero off the support,
        ``w_hat = sum_n alpha_n y_n x_n``. When the multipliers are not unique (duplicated or
        linearly dependent support vectors) this is the minimum-norm optimal ``alpha``.
    kkt_residual : float
        Largest of: stationarity ``||w - Z^T alpha|| / max(1, ||w||)``, primal
        infeasibility ``max(0, 1 - min_n z_n^T w)``, dual infeasibility
        ``max(0, -min alpha) / max(1, ||w||^2)`` and complementarity
        ``max_n |alpha_n (z_n^T w - 1)| / max(1, ||w||^2)``. The multiplier terms are scaled
        by ``max(1, ||w||^2)`` (``sum_n alpha_n = ||w_hat||^2``) so that rescaling the data,
        which scales alpha like ``||w_hat||^2``, does not inflate the residual; for
        ``||w_hat|| <= 1`` every term is absolute.
    status : str
        ``"optimal"``.
    """

    coef: np.ndarray
    margin: float
    direction: np.ndarray
    support: np.ndarray
    dual: np.ndarray
    kkt_residual: float
    status: str = "optimal"
    _X: np.ndarray | None = field(default=None, repr=False)
    _y: np.ndarray | None = field(default=None, repr=False)

    def w_tilde(self, lr: float, w0: Any = None) -> np.ndarray:
        """Limit of the GD residual ``rho(t) = w(t) - w_hat log t`` (Theorem 4, eq. 2.7).

        See :func:`w_tilde`; this uses the data this solution was computed from.
        """
        if self._X is None or self._y is None:
            raise ValueError(
                "This MaxMarginSolution does not carry its data; call "
                "fastbias.references.w_tilde(X, y, lr, w0, solution=...) instead."
            )
        return w_tilde(self._X, self._y, lr, w0=w0, solution=self)


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _kkt_parts(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    """The four KKT violations of eq. (2.6) for the pair (w, alpha).

    Stationarity is measured relative to ``max(1, ||w||)``; the multiplier terms (dual
    infeasibility, complementarity) relative to ``max(1, ||w||^2)``, the size of
    ``sum_n alpha_n = ||w_hat||^2`` at the optimum. For ``||w_hat|| <= 1`` all four are
    absolute; the normalization makes the residual invariant under rescaling the data,
    where ``alpha`` scales like ``||w_hat||^2``.
    """
    m = Z @ w
    nw = float(np.linalg.norm(w))
    a_scale = max(1.0, nw * nw)
    return {
        "stationarity": float(np.linalg.norm(w - Z.T @ alpha) / max(1.0, nw)),
        "primal": float(max(0.0, 1.0 - m.min())),
        "dual": float(max(0.0, -alpha.min()) / a_scale),
        "complementarity": float(np.max(np.abs(alpha * (m - 1.0))) / a_scale),
    }


def _ldp(G: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Least-distance programming ``min ||x|| s.t. G x >= h`` by NNLS (Lawson & Hanson, ch. 23).

    Solves ``min ||E u - f||, u >= 0`` with ``E = [G^T; h^T]`` and ``f = e_{n+1}``. With
    ``r = E u - f`` the LDP is infeasible iff ``r = 0``; otherwise ``x = -r[:n] / r[n]`` and
    ``lam = -u / r[n] >= 0`` are its solution and multipliers (``x = G^T lam``).

    Returns
    -------
    u : ndarray
        The NNLS solution (its positive entries are the active constraints).
    r : ndarray
        The NNLS residual ``E u - f``; ``r[-1] = -||r||^2``.
    r2 : float
        ``||r||^2 = 1 / (1 + ||x||^2)`` (0 when infeasible).
    """
    m, n = G.shape
    E = np.empty((n + 1, m))
    E[:n] = G.T
    E[n] = h
    f = np.zeros(n + 1)
    f[n] = 1.0
    maxiter = max(3 * m, 100)
    for _ in range(3):
        try:
            u, _ = nnls(E, f, maxiter=maxiter)
            break
        except RuntimeError:
            maxiter *= 10
    else:
        raise SolverError(
            f"NNLS (Lawson-Hanson) did not converge in {maxiter // 10} iterations on the "
            f"least-distance reformulation of eq. (2.4) ({m} constraints, {n} unknowns)."
        )
    r = E @ u - f
    return u, r, float(r @ r)


def _certified_separator(Z: np.ndarray, w: np.ndarray) -> float:
    """Margin ``min_n z_n^T w / ||w||`` if it is provably positive in floating point, else 0."""
    if not np.all(np.isfinite(w)) or not np.any(w):
        return 0.0
    m = Z @ w
    bound = np.abs(Z) @ np.abs(w)
    # The rounding error of a dot product of length d is below d * eps * |z|^T |w|.
    if np.all(m > 4.0 * (Z.shape[1] + 1) * _EPS * bound):
        return float(m.min() / np.linalg.norm(w))
    return 0.0


def _lp_separator(Z: np.ndarray) -> np.ndarray | None:
    """A homogeneous separator from an LP (HiGHS), or None if none is found.

    Solves ``max t s.t. Zq v >= t, -1 <= v <= 1, t <= 1`` on the row- and column-equilibrated
    data ``Zq = R Z D`` (feasibility of ``Z w >= 1`` is invariant under both scalings) and
    maps back ``w = D v``. The returned w is certified: ``z_n^T w > 0`` beyond rounding.
    """
    N, d = Z.shape
    Zr = Z / np.linalg.norm(Z, axis=1)[:, None]
    colmax = np.abs(Zr).max(axis=0)
    D = np.where(colmax > 0, 1.0 / np.where(colmax > 0, colmax, 1.0), 1.0)
    Zq = Zr * D
    c = np.zeros(d + 1)
    c[d] = -1.0
    A_ub = np.hstack([-Zq, np.ones((N, 1))])
    bounds = [(-1.0, 1.0)] * d + [(None, 1.0)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(N), bounds=bounds, method="highs")
    if res.status != 0 or res.x is None or -res.fun <= 0:
        return None
    w = D * res.x[:d]
    return w if _certified_separator(Z, w) > 0 else None


def _not_separable(Z: np.ndarray, u: np.ndarray | None = None) -> NotSeparableError:
    """The error for infeasible (2.4), with a Gordan certificate when one is at hand."""
    detail = "no w satisfies y_n x_n^T w > 0 for every n (an LP feasibility check agrees)."
    if u is not None and u.sum() > 0:
        lam = u / u.sum()
        res = float(np.linalg.norm(Z.T @ lam) / max(np.abs(Z).max(), 1e-300))
        idx = np.flatnonzero(lam > 1e-12)
        shown = ", ".join(str(i) for i in idx[:8]) + (", ..." if idx.size > 8 else "")
        detail = (
            f"a convex combination of the samples y_n x_n (rows {shown}) is zero up to "
            f"relative residual {res:.1e}, so no w has y_n x_n^T w > 0 for all of them "
            "(an LP feasibility check agrees)."
        )
    return NotSeparableError(_NOT_SEPARABLE + detail + _BIAS_HINT)


def _full_rank_qr(A: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Economic QR of a tall (d, k) matrix if it clearly has full column rank, else None."""
    d, k = A.shape
    if k == 0 or k > d:
        return None
    Q, R = qr(A, mode="economic", check_finite=False)
    diag = np.abs(np.diag(R))
    if diag.min() <= 1e-8 * diag.max():
        return None  # (near) rank deficient: let the SVD decide the rank
    return Q, R


def _equality_solve(Z: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-norm w with ``Z_S w = 1`` and minimum-norm alpha_S with ``Z_S^T alpha_S = w``.

    With ``Z_S^T = Q R`` of full column rank: ``R^T t = 1``, ``w = Q t``, ``R alpha_S = t``.
    Otherwise SVD-based least squares (numpy ``lstsq``).
    """
    Z_S = Z[S]
    fact = _full_rank_qr(Z_S.T)
    if fact is not None:
        Q, R = fact
        t = solve_triangular(R, np.ones(S.size), trans="T", check_finite=False)
        return Q @ t, solve_triangular(R, t, check_finite=False)
    w = np.linalg.lstsq(Z_S, np.ones(S.size), rcond=None)[0]
    alpha_S = np.linalg.lstsq(Z_S.T, w, rcond=None)[0]
    return w, alpha_S


def _polish(
    Z: np.ndarray, S0: np.ndarray, thresh: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Primal-dual active-set refinement of the NNLS active set (exact linear algebra).

    On the working set S solve the equality-constrained problem ``min ||w|| s.t. Z_S w = 1``
    exactly; drop the most negative multiplier or add the most violated constraint until
    ``alpha_S >= 0`` (relative to ``max |alpha_S|``) and ``Z w >= 1`` hold to ``thresh``.
    Returns (w, alpha) or None.
    """
    N = Z.shape[0]
    S = np.unique(S0)
    seen: set[tuple[int, ...]] = set()
    for _ in range(max_iter):
        key = tuple(S.tolist())
        if key in seen or S.size == 0:
            return None
        seen.add(key)
        w, alpha_S = _equality_solve(Z, S)
        if alpha_S.min() < -thresh * max(1.0, float(np.abs(alpha_S).max())):
            S = np.delete(S, int(np.argmin(alpha_S)))
            continue
        viol = 1.0 - Z @ w
        j = int(np.argmax(viol))
        if viol[j] > thresh:
            if np.isin(j, S):
                return None
            S = np.sort(np.append(S, j))
            continue
        alpha = np.zeros(N)
        alpha[S] = np.maximum(alpha_S, 0.0)
        return w, alpha
    return None


def _min_norm_dual(Z: np.ndarray, w: np.ndarray, S: np.ndarray) -> np.ndarray | None:
    """Minimum-norm alpha >= 0 supported on S with ``Z_S^T alpha_S = w`` (eq. 2.6).

    The least-squares solution ``alpha0 = pinv(Z_S^T) w`` is the minimum-norm solution of the
    equations; if it is nonnegative it is the answer. Otherwise write
    ``alpha = alpha0 + Nc`` with N an orthonormal basis of null(Z_S^T), orthogonal to alpha0,
    so ``||alpha||^2 = ||alpha0||^2 + ||c||^2``: the constrained minimum-norm dual is the
    least-distance problem ``min ||c|| s.t. N c >= -alpha0``, solved exactly by NNLS.
    """
    A = Z[S].T  # (d, |S|)
    fact = _full_rank_qr(A)
    if fact is not None:  # independent support vectors: the dual is unique
        Q, R = fact
        alpha = solve_triangular(R, Q.T @ w, check_finite=False)
        scale = max(float(np.abs(alpha).max()), 1e-300)
        return np.maximum(alpha, 0.0) if alpha.min() >= -1e-13 * scale else None
    U, s, Vt = np.linalg.svd(A, full_matrices=True)
    rank = int(np.sum(s > max(A.shape) * _EPS * (s[0] if s.size else 0.0)))
    alpha0 = Vt[:rank].T @ ((U[:, :rank].T @ w) / s[:rank])
    scale = max(float(np.abs(alpha0).max(initial=0.0)), 1e-300)
    if alpha0.min(initial=0.0) >= -1e-13 * scale:
        return np.maximum(alpha0, 0.0)
    Nb = Vt[rank:].T
    if Nb.shape[1] == 0:
        return None
    u, r, r2 = _ldp(Nb, -alpha0)
    if r2 <= 0 or r[-1] >= 0:
        return None
    c = -r[:-1] / r[-1]
    return np.maximum(alpha0 + Nb @ c, 0.0)


# ----------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------


def max_margin(X: Any, y: Any = None, *, tol: float = 1e-10) -> MaxMarginSolution:
    """Exact homogeneous L2 hard-margin separator, Soudry et al. (2018) eq. (2.4).

    Solves ``w_hat = argmin ||w||^2  s.t.  z_n^T w >= 1`` for all n, with ``z_n = y_n x_n``
    and no bias term, and returns it with its KKT multipliers (eq. 2.6).

    Parameters
    ----------
    X : array_like of shape (N, d)
        Samples.
    y : array_like of shape (N,), optional
        Binary labels (see :func:`fastbias._validation.encode_labels`); ``None`` means all +1,
        i.e. the labels are already folded into X as in the paper.
    tol : float, default 1e-10
        Largest accepted KKT residual (see :class:`MaxMarginSolution`).

    Returns
    -------
    MaxMarginSolution

    Raises
    ------
    NotSeparableError
        No w has ``z_n^T w >= 1`` for all n (a zero sample, a sample and its negation with the
        same label, XOR, ...). Also a ``ValueError``.
    SolverError
        The final KKT residual exceeds ``tol``.

    Notes
    -----
    Algorithm: (2.4) is a least-distance program, reduced to non-negative least squares
    (Lawson & Hanson 1974, ch. 23): ``min ||E u - f||, u >= 0`` with ``E = [Z^T; 1^T]`` and
    ``f = e_{d+1}``. With ``r = E u - f``: ``r = 0`` iff (2.4) is infeasible (then
    ``u / sum(u)`` is a Gordan certificate ``Z^T lam = 0``); otherwise ``w = -r[:d] / r[d]``
    and ``alpha = -u / r[d]``. SciPy's ``nnls`` is the Householder-based Lawson-Hanson
    active-set method, so this step is finite and exact up to rounding. The data are rescaled
    so that the scaled ``||w||`` is O(1); when the NNLS residual is borderline the answer is
    checked against an LP feasibility problem (HiGHS) and the data rescaled by the LP's
    margin before solving again, so badly scaled but separable data are not rejected.

    Polish: on the active set S the equality-constrained problem is solved directly,
    ``w = pinv(Z_S) 1`` and ``alpha_S = pinv(Z_S^T) w``, with active-set corrections if a
    multiplier is negative or a constraint violated. The reported dual is the minimum-norm
    optimal one over all support vectors (unique unless support vectors are dependent).
    """
    X, y = check_X_y(X, y)
    tol = check_positive(tol, "tol")
    if X.shape[1] <= 500:
        # The dense factorizations here are small; multi-threaded BLAS only adds overhead
        # (and thrashes when the machine is busy).
        with single_blas_thread():
            return _max_margin(X, y, tol)
    return _max_margin(X, y, tol)


def _max_margin(X: np.ndarray, y: np.ndarray, tol: float) -> MaxMarginSolution:
    """:func:`max_margin` on validated inputs."""
    Z = y[:, None] * X
    N, d = Z.shape

    row_norms = np.linalg.norm(Z, axis=1)
    zero = np.flatnonzero(row_norms == 0)
    if zero.size:
        raise NotSeparableError(
            _NOT_SEPARABLE
            + f"sample {int(zero[0])} is the zero vector, so y_n x_n^T w = 0 < 1 for every w."
            + _BIAS_HINT
        )

    # --- NNLS on rescaled data: scale s so that ||w_hat(Z / s)|| = s ||w_hat(Z)|| ~ 1 ------
    s = float(row_norms.max())  # then ||w_hat(Z/s)|| >= 1
    lp_checked = False
    for _ in range(6):
        u, r, r2 = _ldp(Z / s, np.ones(N))
        w_s = -r[:d] / r[d] if r[d] < 0 else None
        if r2 >= _BORDERLINE_R2 and w_s is not None:
            nw = float(np.linalg.norm(w_s))
            if nw >= 1e-4:
                break
            s = s / nw  # too small: rescale and solve again
            continue
        # Borderline or infeasible: certify separability, or prove there is none.
        gamma = _certified_separator(Z, w_s) if w_s is not None else 0.0
        if gamma == 0.0:
            if lp_checked:
                break
            lp_checked = True
            w_lp = _lp_separator(Z)
            if w_lp is None:
                raise _not_separable(Z, u)
            gamma = _certified_separator(Z, w_lp)
        s = gamma  # a lower bound on the true margin: ||w_hat(Z / s)|| <= 1
    if w_s is None or r[d] >= 0:
        raise SolverError(
            "NNLS could not solve the least-distance form of eq. (2.4) although the data are "
            f"separable (NNLS residual^2 = {r2:.3e} after rescaling)."
        )

    # Raw NNLS answer in original units: Z/s has w_s = s w_hat, alpha = alpha_s / s^2.
    w_raw = w_s / s
    alpha_raw = (-u / r[d]) / s**2
    candidates: list[tuple[np.ndarray, np.ndarray]] = [(w_raw, alpha_raw)]

    S0 = np.flatnonzero(u > 0)
    polished = _polish(Z, S0, thresh=min(0.1 * tol, 1e-12), max_iter=50 + 2 * d)
    if polished is not None:
        candidates.insert(0, polished)

    best: tuple[np.ndarray, np.ndarray, dict[str, float]] | None = None
    for w_c, a_c in candidates:
        support = np.flatnonzero(np.abs(Z @ w_c - 1.0) <= _SUPPORT_ATOL)
        if support.size == 0:
            continue
        alpha_S = _min_norm_dual(Z, w_c, support)
        if alpha_S is None:
            alpha = a_c.copy()
            alpha[np.setdiff1d(np.arange(N), support)] = 0.0
        else:
            alpha = np.zeros(N)
            alpha[support] = alpha_S
        parts = _kkt_parts(Z, w_c, alpha)
        if best is None or max(parts.values()) < max(best[2].values()):
            best = (w_c, alpha, parts)
        if max(parts.values()) <= tol:
            break
    if best is None:
        raise SolverError("No candidate solution of eq. (2.4) has any constraint active.")
    w, alpha, parts = best
    kkt = max(parts.values())
    if kkt > tol:
        shown = ", ".join(f"{k} {v:.2e}" for k, v in parts.items())
        raise SolverError(
            f"max_margin reached KKT residual {kkt:.2e} > tol={tol:.1e} ({shown}); the data "
            f"may be too badly scaled (||w_hat|| = {np.linalg.norm(w):.3e}). Pass a larger "
            "tol to accept this accuracy."
        )

    nw = float(np.linalg.norm(w))
    support = np.flatnonzero(np.abs(Z @ w - 1.0) <= _SUPPORT_ATOL).astype(np.int64)
    coef = w.astype(np.float64, copy=True)
    direction = coef / nw
    X_keep, y_keep = X.copy(), y.copy()  # never freeze the caller's arrays
    for arr in (coef, direction, support, alpha, X_keep, y_keep):
        arr.setflags(write=False)
    return MaxMarginSolution(
        coef=coef,
        margin=1.0 / nw,
        direction=direction,
        support=support,
        dual=alpha,
        kkt_residual=float(kkt),
        status="optimal",
        _X=X_keep,
        _y=y_keep,
    )


def w_tilde(
    X: Any,
    y: Any,
    lr: float,
    w0: Any = None,
    solution: MaxMarginSolution | None = None,
) -> np.ndarray:
    """Limit of the GD residual ``rho(t) = w(t) - w_hat log t`` (Soudry et al. Theorem 4).

    For gradient descent with step size ``lr`` on the exponential loss, Theorem 4 states
    ``rho(t) -> w_tilde`` where (eq. 2.7)

    .. math:: \\eta \\exp(-z_n^\\top \\tilde w) = \\alpha_n \\quad \\forall n \\in S,

    provided the support vectors span the data, ``rank(Z_S) = rank(Z)``. When the dual
    ``alpha`` is not unique (duplicated or linearly dependent support vectors) the condition
    is that *some* optimal dual satisfies (2.7), i.e.
    ``lr * sum_{n in S} exp(-z_n^T w_tilde) z_n = w_hat``. That is the stationarity condition
    of the strictly convex problem

    .. math:: \\min_{v \\in \\mathrm{span}\\{z_n : n \\in S\\}}
              F(v) = \\eta \\sum_{n \\in S} \\exp(-z_n^\\top v) + \\hat w^\\top v,

    coercive when some optimal dual has ``alpha_n > 0`` on all of S, which is solved here by
    damped Newton to a relative gradient norm of about 1e-14. With a unique dual this is the
    solution of (2.7).

    Parameters
    ----------
    X, y : array_like
        The data, as for :func:`max_margin`.
    lr : float
        GD step size ``eta`` (> 0).
    w0 : array_like of shape (d,), optional
        GD initial point. GD never changes the component of w(t) orthogonal to span(Z), so
        that component of w0 is added to the result (the in-span part of the limit does not
        depend on w0).
    solution : MaxMarginSolution, optional
        A precomputed ``max_margin(X, y)``.

    Returns
    -------
    ndarray of shape (d,)

    Raises
    ------
    ValueError
        If the support vectors do not span the data (Theorem 4 does not apply), or some
        support vector has a zero multiplier in every optimal dual (eq. 2.7 has no solution).
    SolverError
        If Newton's method does not converge.
    """
    X, y = check_X_y(X, y)
    lr = check_positive(lr, "lr")
    N, d = X.shape
    if solution is None:
        solution = max_margin(X, y)
    elif solution.coef.shape != (d,) or solution.dual.shape != (N,):
        raise ValueError(
            f"solution is for data of shape ({solution.dual.shape[0]}, {solution.coef.shape[0]}) "
            f"but X has shape ({N}, {d})."
        )
    w0v = None if w0 is None else check_vector(w0, d, "w0")
    Z = y[:, None] * X
    S = np.asarray(solution.support)
    w_hat = np.asarray(solution.coef)
    Z_S = Z[S]

    rank_S = int(np.linalg.matrix_rank(Z_S)) if S.size else 0
    rank = int(np.linalg.matrix_rank(Z))
    if rank_S != rank:
        raise ValueError(
            "Theorem 4 does not apply: the support vectors do not span the data "
            f"(rank of the {S.size} support vectors = {rank_S} < rank of the data = {rank}), "
            "so rho(t) = w(t) - w_hat log t need not converge and eq. (2.7) has no unique "
            "solution."
        )

    # Coercivity of F needs an optimal dual with alpha_n > 0 on all of S.
    alpha_S = np.asarray(solution.dual)[S]
    amax = float(alpha_S.max())
    if alpha_S.min() <= 1e-12 * amax:
        alpha_S = _strictly_positive_dual(Z_S, w_hat, S)

    # Orthonormal basis B of span{z_n : n in S}; v = B c, A = Z_S B has full column rank.
    Vt = np.linalg.svd(Z_S, full_matrices=False)[2]
    B = Vt[:rank_S].T
    A = Z_S @ B
    g = B.T @ w_hat
    gscale = max(float(np.linalg.norm(w_hat)), 1e-300)

    # Start from the least-squares solution of (2.7) for the given dual (exact if unique).
    c = np.linalg.lstsq(A, -np.log(alpha_S / lr), rcond=None)[0]

    def objective(cc: np.ndarray) -> float:
        t = -A @ cc
        if t.max() > 700.0:
            return np.inf
        return float(lr * np.exp(t).sum() + g @ cc)

    best_c, best_gn, stalls = c, np.inf, 0
    for _ in range(200):
        e = lr * np.exp(np.minimum(-A @ c, 700.0))
        grad = g - A.T @ e
        gn = float(np.linalg.norm(grad))
        if gn < best_gn:
            best_c, best_gn, stalls = c, gn, 0
        else:
            stalls += 1
        if best_gn <= 1e-14 * gscale or (stalls >= 5 and best_gn <= 1e-11 * gscale):
            break  # converged, or at the rounding floor
        H = A.T @ (e[:, None] * A)
        try:
            L = np.linalg.cholesky(H)
            step = -np.linalg.solve(L.T, np.linalg.solve(L, grad))
        except np.linalg.LinAlgError:
            step = -np.linalg.lstsq(H, grad, rcond=None)[0]
        dec = float(-grad @ step)  # squared Newton decrement
        t = 1.0
        if dec > 1e-10:
            f0 = objective(c)
            while t > 1e-12 and not objective(c + t * step) <= f0 - 0.25 * t * dec:
                t *= 0.5
        c = c + t * step
    c = best_c
    if not best_gn <= 1e-11 * gscale:
        raise SolverError(
            "Newton's method for eq. (2.7) stopped at relative gradient norm "
            f"{best_gn / gscale:.2e}."
        )

    v = B @ c
    if w0v is not None:
        # Component of w0 orthogonal to span(Z) = span(Z_S) (equal ranks): GD never moves it.
        v = v + (w0v - B @ (B.T @ w0v))
    return v


def _strictly_positive_dual(Z_S: np.ndarray, w_hat: np.ndarray, S: np.ndarray) -> np.ndarray:
    """An optimal dual with alpha_n > 0 on all of S, or ValueError if none exists (LP)."""
    m, d = Z_S.shape
    # max s  s.t.  Z_S^T alpha = w_hat,  alpha_n - s >= 0,  s <= 1
    c = np.zeros(m + 1)
    c[m] = -1.0
    A_eq = np.hstack([Z_S.T, np.zeros((d, 1))])
    A_ub = np.hstack([-np.eye(m), np.ones((m, 1))])
    bounds = [(0.0, None)] * m + [(None, 1.0)]
    res = linprog(
        c, A_ub=A_ub, b_ub=np.zeros(m), A_eq=A_eq, b_eq=w_hat, bounds=bounds, method="highs"
    )
    if res.status == 0 and res.x is not None:
        alpha = res.x[:m]
        if -res.fun > 1e-9 * max(float(alpha.max()), 1e-300):
            return alpha
        zero = S[alpha <= 1e-9 * max(float(alpha.max()), 1e-300)]
    else:
        zero = S
    raise ValueError(
        "Theorem 4 does not apply: support vector(s) "
        f"{', '.join(str(int(i)) for i in zero[:8])} have a zero multiplier in every optimal "
        "dual (no strict complementarity), so eq. (2.7) eta*exp(-z_n^T w_tilde) = alpha_n "
        "has no solution."
    )
