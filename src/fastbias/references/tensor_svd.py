"""Singular vectors of data tensors and the limit directions they predict (Yun et al. 2021).

* eq. (8) (Lim 2005): ``u_1, ..., u_L`` are singular vectors of an order-L tensor ``A`` with
  singular value ``s`` when ``s u_l = A o (u_1, .., u_{l-1}, I, u_{l+1}, .., u_L)`` for every l.
  :func:`tensor_singular_vectors` finds the largest one found from several starts of the
  higher-order power method; :func:`singular_vector_residual` measures how far given vectors
  are from satisfying eq. (8). Theorem 1: the layers of a linear tensor network trained to
  zero loss converge in direction to singular vectors of ``M(-u_inf)``.
* Theorem 3: a 2-layer linear tensor network trained on one separable point converges in
  direction to the top singular vectors of ``M(x)`` (L1 minimization in singular-value
  space); :func:`two_layer_limit_direction`. Corollary 4: the resulting directions for
  convolutional networks with filters of size 1 and 2 (:func:`conv_filter_limit_direction`).
* :func:`data_tensor_stack` / :func:`data_tensor`: ``M(x)`` of Yun eq. (6) for any fastbias
  model, read off its predictor (every model here is multilinear in its layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "data_tensor_stack",
    "data_tensor",
    "TensorSingularVectors",
    "tensor_singular_vectors",
    "singular_vector_residual",
    "LimitDirection",
    "two_layer_limit_direction",
    "conv_filter_limit_direction",
]

_MAX_STACK = 5_000_000  # entries of a dense (d, k_1, ..., k_L) data tensor we agree to build


# ----------------------------------------------------------------------------------------
# data tensors of fastbias models
# ----------------------------------------------------------------------------------------


def _model_layers(model: Any, d: int) -> tuple[Any, list[tuple[int, ...]]]:
    from fastbias.models import Model, get_model

    mdl = get_model(model) if not isinstance(model, Model) else model
    return mdl, mdl.shapes(int(d))


def data_tensor_stack(model: Any, d: int) -> np.ndarray:
    """The data tensor of a model, ``M[j] = M(e_j)`` of Yun et al. (2021) eq. (6).

    ``f(x) = M(x) o (v_1, ..., v_L)`` with ``M(x) = sum_j x_j M[j]`` and ``v_l`` the l-th layer
    flattened in C order (fastbias's layout). A :class:`fastbias.models.Tensor` returns its own
    ``M``; for any other model the entries are read off the predictor, which is multilinear in
    the layers: ``M[:, j_1, .., j_L] = P(e_{j_1}, ..., e_{j_L})``.

    Parameters
    ----------
    model : fastbias.models.Model or str
        A model of depth ``L >= 1``.
    d : int
        Input dimension.

    Returns
    -------
    ndarray of shape (d, k_1, ..., k_L)

    Raises
    ------
    ValueError
        If the dense tensor would have more than 5e6 entries.
    """
    from fastbias.models import Tensor

    mdl, shapes = _model_layers(model, d)
    if isinstance(mdl, Tensor):
        return mdl.to_dense()
    ks = [int(np.prod(s)) for s in shapes]
    total = int(d) * math.prod(ks)
    if total > _MAX_STACK:
        raise ValueError(
            f"the data tensor of {mdl!r} for d = {d} has {total} entries (d x {ks}); "
            f"building it densely is limited to {_MAX_STACK}."
        )
    out = np.zeros((int(d), *ks))
    eye = [np.eye(k) for k in ks]
    for idx in np.ndindex(*ks):
        params = [eye[layer][j].reshape(shapes[layer]) for layer, j in enumerate(idx)]
        out[(slice(None), *idx)] = mdl.predictor(params)
    return out


def data_tensor(model: Any, x: Any) -> np.ndarray:
    """``M(x)`` of Yun et al. (2021) eq. (6) for one input ``x`` of a fastbias model.

    Parameters
    ----------
    model : fastbias.models.Model, str, or ndarray of shape (d, k_1, ..., k_L)
        A model, or a data tensor stack from :func:`data_tensor_stack`.
    x : array_like of shape (d,)

    Returns
    -------
    ndarray of shape (k_1, ..., k_L)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"x must be a finite 1-D vector; got shape {x.shape}.")
    stack = _as_stack(model, x.shape[0])
    return np.tensordot(x, stack, axes=(0, 0))


def _as_stack(model: Any, d: int) -> np.ndarray:
    if isinstance(model, np.ndarray):
        stack = np.asarray(model, dtype=np.float64)
        if stack.ndim < 2 or stack.shape[0] != d:
            raise ValueError(
                f"a data tensor stack must have shape (d, k_1, ..., k_L) with d = {d}; got "
                f"{stack.shape}."
            )
        if not np.all(np.isfinite(stack)):
            raise ValueError("the data tensor contains NaN or inf.")
        return stack
    return data_tensor_stack(model, d)


# ----------------------------------------------------------------------------------------
# singular vectors of tensors, eq. (8)
# ----------------------------------------------------------------------------------------


def _contract_except(T: np.ndarray, vecs: list[np.ndarray], skip: int) -> np.ndarray:
    """``T o (u_1, .., u_{skip-1}, I, u_{skip+1}, .., u_L)`` (Yun Section 2)."""
    out = T
    for mode in range(T.ndim - 1, -1, -1):  # highest first: lower axis numbers stay valid
        if mode != skip:
            out = np.tensordot(out, vecs[mode], axes=([mode], [0]))
    return out


def _check_tensor(T: Any) -> np.ndarray:
    try:
        A = np.asarray(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("T must be a real array (a tensor of order L >= 2).") from None
    if A.ndim < 2:
        raise ValueError(f"T must be a tensor of order L >= 2; got shape {A.shape}.")
    if A.size == 0:
        raise ValueError(f"T is empty (shape {A.shape}).")
    if not np.all(np.isfinite(A)):
        raise ValueError("T contains NaN or inf; it must be finite.")
    return A


def _check_vectors(A: np.ndarray, vectors: Any) -> list[np.ndarray]:
    vecs = list(vectors)
    if len(vecs) != A.ndim:
        raise ValueError(f"T has order {A.ndim} but {len(vecs)} vectors were given.")
    out = []
    for layer, (v, k) in enumerate(zip(vecs, A.shape, strict=True)):
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.shape[0] != k:
            raise ValueError(f"vector {layer + 1} has {v.shape[0]} entries; mode has k = {k}.")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"vector {layer + 1} contains NaN or inf.")
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            raise ValueError(f"vector {layer + 1} is zero; singular vectors have unit norm.")
        out.append(v / nv)
    return out


def _residuals(A: np.ndarray, vecs: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """``s = A(u_1, .., u_L)`` and ``||A o (u_{-l}) - s u_l||`` for every l."""
    s = float(_contract_except(A, vecs, A.ndim - 1) @ vecs[-1])
    res = np.array(
        [
            np.linalg.norm(_contract_except(A, vecs, layer) - s * vecs[layer])
            for layer in range(A.ndim)
        ]
    )
    return s, res


def singular_vector_residual(T: Any, vectors: Any) -> float:
    """How far ``vectors`` are from singular vectors of ``T`` (Yun et al. 2021, eq. 8).

    The vectors are normalized, ``s = T o (u_1, ..., u_L)`` and the residual is

        max_l || T o (u_1, .., u_{l-1}, I, u_{l+1}, .., u_L) - s u_l ||_2 / ||T||_F,

    scale-free, 0 exactly for singular vectors (including singular value 0) and at most 2.
    Use it to check Theorem 1: the layers of a trained linear tensor network should give a
    small residual for ``T = M(-u_inf)`` (see :func:`data_tensor`).

    Parameters
    ----------
    T : array_like of order L >= 2
    vectors : sequence of L array_like
        ``u_l`` of length ``k_l`` (any nonzero scale).

    Returns
    -------
    float
    """
    A = _check_tensor(T)
    vecs = _check_vectors(A, vectors)
    _, res = _residuals(A, vecs)
    norm = float(np.linalg.norm(A))
    return float(res.max() / norm) if norm > 0 else 0.0


@dataclass(frozen=True, eq=False)
class TensorSingularVectors:
    """Largest singular value found and its singular vectors (Yun et al. 2021, eq. 8).

    Attributes
    ----------
    value : float
        ``s = T o (u_1, ..., u_L) >= 0``.
    vectors : list of ndarray
        Unit vectors ``u_l``; signs fixed so that the largest-magnitude entry of each
        ``u_l`` for ``l < L`` is positive (a joint sign flip of two vectors is the same
        singular tuple).
    residual : float
        :func:`singular_vector_residual` of the answer.
    converged : bool
        Whether the residual reached ``tol``.
    n_iter : int
        Power-method sweeps of the winning start.
    values : ndarray
        Singular values reached from every start (sorted, descending).
    """

    value: float
    vectors: list[np.ndarray]
    residual: float
    converged: bool
    n_iter: int
    values: np.ndarray = field(repr=False)


def _hopm(
    A: np.ndarray, vecs: list[np.ndarray], tol: float, max_iter: int, norm: float
) -> tuple[list[np.ndarray], float, float, int]:
    """Higher-order power method (De Lathauwer et al. 2000): cyclic ``u_l <- A o (u_{-l})``."""
    L = A.ndim
    res = np.inf
    s = 0.0
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        for layer in range(L):
            v = _contract_except(A, vecs, layer)
            nv = float(np.linalg.norm(v))
            if nv == 0.0:
                return vecs, 0.0, np.inf, it
            vecs[layer] = v / nv
        s, r = _residuals(A, vecs)
        res = float(r.max() / norm)
        if res <= tol:
            break
    return vecs, s, res, it


def tensor_singular_vectors(
    T: Any,
    n_starts: int = 8,
    seed: int | None = 0,
    *,
    tol: float = 1e-12,
    max_iter: int = 5000,
) -> TensorSingularVectors:
    """Singular vectors of an order-L tensor with the largest singular value found (eq. 8).

    Solves ``s u_l = T o (u_1, .., u_{l-1}, I, u_{l+1}, .., u_L)`` (Yun et al. 2021, eq. 8;
    Lim 2005) by the higher-order power method from ``n_starts`` starts: the truncated HOSVD
    (leading left singular vector of every unfolding) and ``n_starts - 1`` seeded Gaussian
    vectors. Each run converges to a singular tuple (a critical point of ``T(u_1..u_L)`` on the
    product of spheres); the largest ``s`` is returned. For matrices this is the top singular
    triple; for orthogonally decomposable tensors, the largest component. In general the
    largest singular value is NP-hard to certify (Hillar & Lim 2013), so more starts only
    make it more likely.

    Parameters
    ----------
    T : array_like of shape (k_1, ..., k_L), L >= 2
    n_starts : int, default 8
    seed : int or None, default 0
    tol : float, default 1e-12
        Target :func:`singular_vector_residual`.
    max_iter : int, default 5000
        Power sweeps per start.

    Returns
    -------
    TensorSingularVectors

    Raises
    ------
    ValueError
        Bad ``T`` (order < 2, NaN, empty) or arguments.
    """
    from fastbias._validation import check_positive, check_positive_int

    A = _check_tensor(T)
    n_starts = check_positive_int(n_starts, "n_starts")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_positive(tol, "tol")
    L = A.ndim
    norm = float(np.linalg.norm(A))
    if norm == 0.0:
        vecs = [np.eye(k)[0] for k in A.shape]
        return TensorSingularVectors(0.0, vecs, 0.0, True, 0, np.zeros(1))
    rng = np.random.default_rng(seed)
    starts = []
    hosvd = []
    for layer in range(L):
        unfold = np.moveaxis(A, layer, 0).reshape(A.shape[layer], -1)
        hosvd.append(np.linalg.svd(unfold, full_matrices=False)[0][:, 0].copy())
    starts.append(hosvd)
    for _ in range(n_starts - 1):
        starts.append([rng.standard_normal(k) for k in A.shape])
    best = None
    values = []
    for start in starts:
        vecs = [v / np.linalg.norm(v) for v in start]
        vecs, s, res, it = _hopm(A, vecs, tol, max_iter, norm)
        if not np.isfinite(res):
            continue
        values.append(s)
        if (
            best is None
            or s > best[1] + 1e-12 * norm
            or (abs(s - best[1]) <= 1e-12 * norm and res < best[2])
        ):
            best = (vecs, s, res, it)
    if best is None:  # every start fell into a zero contraction
        vecs = [np.eye(k)[0] for k in A.shape]
        res0 = singular_vector_residual(A, vecs)
        return TensorSingularVectors(0.0, vecs, res0, False, 0, np.zeros(1))
    vecs, s, res, it = best
    vecs = [v.copy() for v in vecs]
    for layer in range(L - 1):  # canonical signs, compensated on the last vector
        if vecs[layer][np.argmax(np.abs(vecs[layer]))] < 0:
            vecs[layer] = -vecs[layer]
            vecs[-1] = -vecs[-1]
    if s < 0:
        vecs[-1] = -vecs[-1]
        s = -s
    return TensorSingularVectors(
        value=float(s),
        vectors=vecs,
        residual=float(res),
        converged=bool(res <= tol),
        n_iter=int(it),
        values=np.sort(np.asarray(values))[::-1],
    )


# ----------------------------------------------------------------------------------------
# Theorem 3 and Corollary 4: 2-layer networks, one separable point
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LimitDirection:
    """A predicted limit direction of ``beta(t)``, or the statement that there is none.

    Attributes
    ----------
    direction : ndarray of shape (d,) or None
        Unit vector the linear coefficients converge to in direction; None when the theory
        gives no unique prediction (see ``reason``).
    unique : bool
        Whether the theorem pins the direction down.
    theorem : str
        The result the prediction comes from.
    reason : str
        Why there is no unique prediction (empty when there is).
    layers : list of ndarray or None
        Unit limit directions of the layers ``v_1, v_2`` (Theorem 3), up to a joint sign.
    singular_values : ndarray or None
        Singular values ``s`` of ``M(x)`` (descending).
    condition : float or None
        Theorem 3's ``lambda = min_j [U_1^T v1_bar]_j^2 - [U_2^T v2_bar]_j^2`` for the given
        initial directions (None if none were given); the loss provably goes to zero when
        it is positive.
    """

    direction: np.ndarray | None
    unique: bool
    theorem: str
    reason: str = ""
    layers: list[np.ndarray] | None = None
    singular_values: np.ndarray | None = None
    condition: float | None = None


_TIE_RTOL = 1e-10


def _label_sign(y: Any) -> float:
    try:
        yv = float(np.asarray(y, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"y must be one nonzero label; got {y!r}.") from None
    if not np.isfinite(yv) or yv == 0.0:
        raise ValueError(f"y must be a finite nonzero label (its sign is the class); got {yv}.")
    return math.copysign(1.0, yv)


def _several_points(x: np.ndarray, theorem: str) -> LimitDirection | None:
    """Validate one data point; for several, the explicit "no prediction" result."""
    if x.ndim == 2 and x.shape[0] > 1:
        return LimitDirection(
            direction=None,
            unique=False,
            theorem=f"Yun et al. 2021, {theorem}",
            reason=(
                f"{theorem} covers one data point; with {x.shape[0]} points a 2-layer network "
                "that is not orthogonally decomposable (e.g. convolutions with small filters) "
                "has no known limit direction (Gunasekar et al. 2018, Section 6)."
            ),
        )
    if not (x.ndim == 1 or (x.ndim == 2 and x.shape[0] == 1)) or x.size == 0:
        raise ValueError(f"x must be one data point (a 1-D vector); got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf.")
    return None


def two_layer_limit_direction(model: Any, x: Any, y: Any, init: Any = None) -> LimitDirection:
    """Limit direction of a 2-layer linear tensor network on one separable point (Theorem 3).

    Yun et al. (2021) Theorem 3: with ``M(x) = U_1 diag(s) U_2^T`` (SVD) and exponential loss,
    ``v_1, v_2`` converge in direction to ``U_1 eta_1, U_2 eta_2`` with
    ``|eta_1| = |eta_2| = |rho|^{1/2}``, ``sign(eta_1) = sign(y) sign(eta_2)``, where ``rho``
    minimizes ``||rho||_1`` subject to ``y s^T rho >= 1``: it is supported on the largest
    singular value. When that value is simple the layers align with the top singular pair
    ``(u_1, sign(y) u_2)`` and ``beta = P(v_1, v_2)`` with the direction of
    ``sign(y) P(u_1, u_2)``. When it is repeated, every nonnegative combination on the top
    singular space solves the L1 problem, ``v_1 = U_1 a``, ``v_2 = sign(y) U_2 a`` for some
    ``a`` on that block, and the theorem does not say which one gradient flow picks. The
    direction of beta is still determined when ``beta(a)`` has the same direction for every
    ``a`` (fully connected networks: ``y x``, Corollary 1); otherwise the result says so
    (``unique=False``) and ``layers`` is None.

    Parameters
    ----------
    model : fastbias.models.Model of depth 2, or ndarray of shape (d, k_1, k_2)
        The network, or its data tensor stack (:func:`data_tensor_stack`).
    x : array_like of shape (d,)
        The single data point. An array of several rows gives the "no prediction" result.
    y : float
        Its label (only the sign is used).
    init : sequence of 2 arrays, optional
        Initial directions ``v1_bar, v2_bar`` (layer shapes or flat), to evaluate Theorem 3's
        sufficient condition ``lambda > 0``.

    Returns
    -------
    LimitDirection
    """
    x = np.asarray(x, dtype=np.float64)
    several = _several_points(x, "Theorem 3")
    if several is not None:
        return several
    x = x.reshape(-1)
    ysign = _label_sign(y)
    stack = _as_stack(model, x.shape[0])
    if stack.ndim != 3:
        raise ValueError(
            f"Theorem 3 is for 2-layer networks; the data tensor has order {stack.ndim - 1}."
        )
    Mx = np.tensordot(x, stack, axes=(0, 0))
    U1, s, V2t = np.linalg.svd(Mx, full_matrices=False)
    theorem = "Yun et al. 2021, Theorem 3"
    if s.size == 0 or s[0] == 0.0:
        raise ValueError("M(x) = 0: the network output is 0 for this x, so it cannot be fit.")
    cond = None
    if init is not None:
        v1b, v2b = (np.asarray(v, dtype=np.float64).ravel() for v in init)
        if v1b.shape[0] != Mx.shape[0] or v2b.shape[0] != Mx.shape[1]:
            raise ValueError(
                f"init layers have {v1b.shape[0]} and {v2b.shape[0]} entries; expected "
                f"{Mx.shape[0]} and {Mx.shape[1]}."
            )
        m = int(np.sum(s > _TIE_RTOL * s[0]))
        cond = float(np.min((U1[:, :m].T @ v1b) ** 2 - (V2t[:m] @ v2b) ** 2))
    top = np.flatnonzero(s >= s[0] * (1.0 - _TIE_RTOL))
    if top.size > 1:
        # Every solution has v_1 = U_1 a, v_2 = sign(y) U_2 a on the top block (any a), so
        # beta_i = sign(y) a^T C_i a with C_i = U_1^T M(e_i) U_2. The direction is still
        # determined when sym(C_i) = u_i K for one definite K (e.g. fully connected networks).
        U1t, U2t = U1[:, top], V2t[top].T
        C = np.einsum("ka,jkl,lb->jab", U1t, stack, U2t)
        C = 0.5 * (C + C.transpose(0, 2, 1))
        flat = C.reshape(C.shape[0], -1)
        Uc, sc, Vc = np.linalg.svd(flat, full_matrices=False)
        K = Vc[0].reshape(top.size, top.size)
        evK = np.linalg.eigvalsh(K)
        rank_one = sc.size < 2 or sc[1] <= 1e-10 * sc[0]
        definite = evK[0] * evK[-1] > 0 and min(abs(evK[0]), abs(evK[-1])) > 1e-10 * abs(evK).max()
        if not (rank_one and definite):
            return LimitDirection(
                direction=None,
                unique=False,
                theorem=theorem,
                reason=(
                    f"the largest singular value {s[0]:.6g} of M(x) has multiplicity "
                    f"{top.size}: the L1 problem min ||rho||_1 s.t. y s^T rho >= 1 has a face "
                    "of solutions, they give different directions of beta, and Theorem 3 does "
                    "not say which one gradient flow reaches (it depends on the initialization)."
                ),
                singular_values=s,
                condition=cond,
            )
        beta = ysign * np.sign(evK[-1]) * sc[0] * Uc[:, 0]
        return LimitDirection(
            direction=beta / np.linalg.norm(beta),
            unique=True,
            theorem=theorem,
            reason="",
            layers=None,
            singular_values=s,
            condition=cond,
        )
    u1 = U1[:, 0].copy()
    u2 = ysign * V2t[0].copy()
    beta = np.einsum("jab,a,b->j", stack, u1, u2)
    nb = float(np.linalg.norm(beta))
    if nb == 0.0:
        raise ValueError("the predicted layers give beta = 0; the data tensor is degenerate.")
    return LimitDirection(
        direction=beta / nb,
        unique=True,
        theorem=theorem,
        layers=[u1, u2],
        singular_values=s,
        condition=cond,
    )


def conv_filter_limit_direction(x: Any, y: Any, kernel_size: int) -> LimitDirection:
    """Corollary 4 of Yun et al. (2021): 2-layer convolutional network, filter size 1 or 2.

    For ``f(x) = (x * w_1)^T w_2`` (circular cross-correlation, ``w_1 in R^k``) trained on one
    separable point with exponential loss:

    * ``k = 1``: ``beta`` converges in direction to ``y x`` (the L2 max-margin direction);
    * ``k = 2``: with ``x_l = roll(x, -1)`` (Yun's left shift ``[x_2 .. x_d x_1]``) and
      ``x_r = roll(x, 1)``, to ``y (2x + x_l + x_r)`` if ``x^T x_l > 0`` (low-pass filter) and
      ``y (2x - x_l - x_r)`` if ``x^T x_l < 0`` (high-pass). If ``x^T x_l = 0`` the two
      singular values of ``M(x)`` are equal and there is no unique prediction.

    Other filter sizes: use :func:`two_layer_limit_direction` with
    ``fastbias.models.Convolutional(2, [k])`` (Theorem 3 applies to any k).

    Parameters
    ----------
    x : array_like of shape (d,), d >= 2 for k = 2
    y : float
        Label (its sign).
    kernel_size : int
        1 or 2.

    Returns
    -------
    LimitDirection
    """
    x = np.asarray(x, dtype=np.float64)
    several = _several_points(x, "Corollary 4")
    if several is not None:
        return several
    x = x.reshape(-1)
    ysign = _label_sign(y)
    nx = float(np.linalg.norm(x))
    if nx == 0.0:
        raise ValueError("x is the zero vector; Corollary 4 needs a nonzero data point.")
    theorem = "Yun et al. 2021, Corollary 4"
    if kernel_size == 1:
        return LimitDirection(ysign * x / nx, True, theorem, singular_values=np.array([nx]))
    if kernel_size != 2:
        raise ValueError(
            f"Corollary 4 covers kernel_size 1 and 2; got {kernel_size!r}. For other filter "
            "sizes use two_layer_limit_direction(Convolutional(2, [k]), x, y) (Theorem 3)."
        )
    d = x.shape[0]
    if d < 2:
        raise ValueError("kernel_size 2 needs d >= 2.")
    xl, xr = np.roll(x, -1), np.roll(x, 1)
    auto = float(x @ xl)
    s = np.sqrt(np.maximum([nx * nx + abs(auto), nx * nx - abs(auto)], 0.0))
    if abs(auto) <= _TIE_RTOL * nx * nx:
        return LimitDirection(
            None,
            False,
            theorem,
            reason=(
                "x^T x_l = 0: the two singular values sqrt(||x||^2 +- x^T x_l) of M(x) are "
                "equal, so Corollary 4 (Theorem 3) gives no unique limit direction."
            ),
            singular_values=s,
        )
    sign = 1.0 if auto > 0 else -1.0
    beta = ysign * (2.0 * x + sign * (xl + xr))
    return LimitDirection(beta / np.linalg.norm(beta), True, theorem, singular_values=s)
