"""What theory predicts for a model and a task: :func:`predicted_limit`.

One call maps (architecture, loss, data, initialization) to the limit the papers prove, with
the theorem it comes from, or says that no theorem applies instead of guessing:

- separable classification (exp/logistic loss), directions of ``beta(t)``:
  ``Linear`` (Soudry et al. Theorem 3) and ``FullyConnected`` (Gunasekar et al. Theorem 1):
  the L2 max-margin SVM; ``Diagonal(L)``: a first-order stationary point of the
  L_{2/L} max-margin problem (Gunasekar Theorem 2, Yun Corollary 2); full-width
  ``Convolutional(L)``: the DFT-domain L_{2/L} problem (Gunasekar Theorem 2, Yun Corollary 3);
  two-layer models on one data point: Yun Theorem 3 / Corollary 4; small filters on several
  points: no prediction (Gunasekar Section 6); ReLU networks: a KKT point of Problem 2 only
  (Vardi et al.), checked with :mod:`fastbias.analysis`, not predicted;
- regression (squared loss), limit points of ``beta(t)``: ``Linear``: the interpolant closest
  to the start; ``Diagonal(L)`` from Yun's initialization: Corollary 5; full-width
  ``Convolutional(L)`` on even data: Corollary 6; two-layer models on one point: Theorem 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_choice, check_X_targets, check_X_y

__all__ = ["Prediction", "predicted_limit"]


@dataclass
class Prediction:
    """A predicted limit, or the statement that theory gives none.

    Attributes
    ----------
    kind : {"direction", "point", "none"}
        ``"direction"``: ``beta(t)/||beta(t)||`` converges to ``direction``
        (classification); ``"point"``: ``beta(t)`` converges to ``coef`` (regression);
        ``"none"``: no theorem applies (see ``reason``).
    coef : ndarray or None
        The predicted solution (max-margin solution with margins >= 1, or the limit point).
    direction : ndarray or None
        ``coef / ||coef||``.
    theorem : str
        Where the prediction comes from.
    stationary_only : bool
        True where the theorem identifies a first-order stationary point of a non-convex
        problem (p = 2/L < 1): GD's limit is *a* stationary point, the returned one is the best
        the solver found (check a run with :func:`fastbias.stationarity`).
    solution : object
        The solver's full result (duals, certificates, ...).
    reason : str
        Why there is no prediction (kind "none").
    """

    kind: str
    coef: np.ndarray | None
    direction: np.ndarray | None
    theorem: str
    stationary_only: bool = False
    solution: Any = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.kind != "none"

    def angle_gap(self, run: Any) -> float:
        """``1 - cos`` between the predicted direction and a run's final predictor.

        ``run``: a :class:`~fastbias.Run` (its ``direction``, finite also for runs whose
        ``coef`` overflows float64) or a predictor vector. Computed from the difference of
        unit vectors (accurate far below 1e-16, Soudry eq. 3.2).
        """
        from ..diagnostics import angle_gap

        if self.direction is None:
            raise ValueError(f"there is no predicted direction: {self.reason}")
        beta = getattr(run, "direction", run)
        if beta is None:
            raise ValueError("the run has no linear predictor (a ReLU network).")
        beta = np.asarray(beta, dtype=np.float64).ravel()
        if beta.shape != self.direction.shape or not np.all(np.isfinite(beta)):
            raise ValueError(
                f"expected a finite predictor of length {self.direction.size}; got shape "
                f"{beta.shape}."
            )
        if not np.any(beta):
            return 1.0  # the zero predictor has cosine 0 with every direction
        return float(angle_gap(beta, self.direction))


def _none(reason: str, theorem: str = "") -> Prediction:
    return Prediction("none", None, None, theorem, reason=reason)


def _from_solution(kind, sol, theorem, stationary_only=False) -> Prediction:
    from ..diagnostics import norm

    coef = np.asarray(sol.coef, dtype=np.float64)
    return Prediction(kind, coef, coef / norm(coef), theorem, stationary_only, sol)


def predicted_limit(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    loss: str | None = None,
    init: Any = None,
    init_scale: float = 1.0,
    seed: int | None = 0,
) -> Prediction:
    """The limit theory predicts for ``fastbias.train(X, y, model=model, loss=loss, init=...)``.

    Parameters
    ----------
    model : Model, str or Run
        Any model of :mod:`fastbias.models` (or a name such as ``"diag:3"``), or a finished
        :class:`~fastbias.Run` (also one past float64): its model, loss, ``init_scale`` and
        ``seed`` are used (pass ``init`` for runs started from explicit arrays). Compare with
        :meth:`Prediction.angle_gap`.
    X, y : arrays
        Data (labels for exp/logistic, real targets for ``loss="squared"``).
    loss : {"exp", "logistic", "squared"}, optional
        Default: the run's loss, or ``"exp"``.
    init, init_scale, seed :
        The initialization passed to ``train`` (used by the regression limits, which depend
        on it; Yun et al. Theorems 5-6).

    Returns
    -------
    Prediction
        ``kind`` "direction", "point" or "none", with the theorem and the solver's result.
    """
    from ..models import Convolutional, Diagonal, FullyConnected, Linear, Tensor, get_model
    from ..optim.history import Run

    if isinstance(model, Run):
        settings = model.settings
        loss = settings.get("loss", "exp") if loss is None else loss
        if init is None and init_scale == 1.0 and seed == 0:
            init_scale = settings.get("init_scale", 1.0)
            seed = settings.get("seed", 0)
        model = model.model
    loss = "exp" if loss is None else loss
    check_choice(loss, "loss", ["exp", "exponential", "logistic", "squared"])
    mdl = get_model(model)
    if loss == "squared":
        X, y = check_X_targets(X, y)
    else:
        X, y = check_X_y(X, y)
    N, d = X.shape
    mdl.shapes(d)
    if not getattr(mdl, "linear_predictor", True):
        return _none(
            "a ReLU network is not a linear predictor: theory (Vardi et al. 2022, Gunasekar "
            "Theorem 4) only says the direction tends to a KKT point of the max-margin problem "
            "in parameter space; check a run with fastbias.analysis.kkt / optimality.",
            "Vardi et al. (2022) Theorem 2.1",
        )
    if loss == "squared":
        return _regression(mdl, X, y, init, init_scale, seed)

    from .margins import max_margin
    from .tensor_svd import conv_filter_limit_direction, two_layer_limit_direction

    if isinstance(mdl, (Linear, FullyConnected)):
        theorem = (
            "Soudry et al. (2018) Theorem 3"
            if isinstance(mdl, Linear)
            else "Gunasekar et al. (2018) Theorem 1"
        )
        return _from_solution("direction", max_margin(X, y), theorem + ": L2 max margin")
    L = mdl.depth
    if isinstance(mdl, Diagonal):
        theorem = "Gunasekar et al. (2018) Theorem 2 / Yun et al. (2021) Corollary 2"
        if L == 1:
            return _from_solution("direction", max_margin(X, y), "Soudry Theorem 3 (L = 1)")
        if L == 2:
            return _from_solution("direction", max_margin(X, y, norm="l1"), theorem + ": L1")
        sol = max_margin(X, y, norm="lp", p=2.0 / L, seed=seed)
        return _from_solution("direction", sol, theorem + f": L_(2/{L}) stationary point", True)
    if isinstance(mdl, Convolutional):
        if mdl.kernel_sizes is None or all(k == d for k in mdl.kernel_sizes):
            theorem = "Gunasekar et al. (2018) Theorem 2 / Yun et al. (2021) Corollary 3"
            if L == 1:
                return _from_solution("direction", max_margin(X, y), "Soudry Theorem 3 (L = 1)")
            if L == 2:
                sol = max_margin(X, y, norm="dft-l1")
                return _from_solution("direction", sol, theorem + ": DFT-L1")
            sol = max_margin(X, y, norm="dft-lp", p=2.0 / L, seed=seed)
            return _from_solution(
                "direction", sol, theorem + f": DFT-L_(2/{L}) stationary point", True
            )
        if N == 1 and L == 2 and mdl.kernel_sizes[0] in (1, 2):
            res = conv_filter_limit_direction(X[0], y[0], mdl.kernel_sizes[0])
            return _limit_direction(res)
        return _none(
            "convolutional filters smaller than d: no characterization of the limit direction "
            "is known beyond one data point with filters of size 1 or 2 (Gunasekar et al. "
            "2018, Section 6; Yun et al. 2021, Corollary 4).",
            "Gunasekar et al. (2018) Section 6",
        )
    if isinstance(mdl, Tensor):
        if mdl.equivalent is not None:
            pred = predicted_limit(mdl.equivalent, X, y, loss=loss, seed=seed)
            pred.theorem += f" (the data tensor of {mdl!r} is that of {mdl.equivalent!r})"
            return pred
        if L == 2 and N == 1:
            params0 = mdl.init_params(d, init, init_scale, seed)
            return _limit_direction(two_layer_limit_direction(mdl, X[0], y[0], init=params0))
        S, why = orthogonal_decomposition(mdl.to_dense(), seed=seed or 0)
        if S is None:
            return _none(
                f"Yun et al. Assumption 1 fails for this data tensor ({why}), so Theorem 2 "
                "gives no prediction.",
                "Yun et al. (2021) Theorem 2",
            )
        p = 2.0 / L
        sol = max_margin(X, y, norm="transformed", S=S, p=p, seed=seed)
        pred = _from_solution(
            "direction",
            sol,
            f"Yun et al. (2021) Theorem 2: min ||rho||_(2/{L}), beta = S^T rho",
            stationary_only=L > 2,
        )
        pred.solution = (sol, S)
        return pred
    return _none(f"no theorem known to fastbias covers {mdl!r}.")


def _limit_direction(res) -> Prediction:
    if res.direction is None or not res.unique:
        return _none(res.reason or "the theorem does not determine the direction", res.theorem)
    direction = np.asarray(res.direction, dtype=np.float64)
    return Prediction("direction", direction, direction, res.theorem, solution=res)


def _regression(mdl, X, y, init, init_scale, seed) -> Prediction:
    from ..diagnostics import norm as vector_norm
    from ..models import Convolutional, Diagonal, Linear
    from .regression_limits import conv_even_regression_limit, diagonal_regression_limit
    from .two_layer import two_layer_limit_point

    N, d = X.shape
    params0 = mdl.init_params(d, init, init_scale, seed)
    if isinstance(mdl, Linear):
        w0 = np.asarray(params0[0], dtype=np.float64)
        coef = w0 + np.linalg.lstsq(X, y - X @ w0, rcond=None)[0]
        if not np.allclose(X @ coef, y, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(y).max())):
            raise ValueError("X z = y has no solution: the regression is not interpolable.")
        pred = Prediction(
            "point",
            coef,
            coef / vector_norm(coef) if np.any(coef) else None,
            "GD on least squares stays in w0 + row space of X: the interpolant nearest to w0",
        )
        return pred
    L = mdl.depth
    first = [np.asarray(p, dtype=np.float64).ravel() for p in params0]
    yun_init = (
        L >= 2 and not np.any(first[-1]) and all(np.array_equal(first[0], p) for p in first[:-1])
    )
    if isinstance(mdl, Diagonal) and yun_init and np.all(first[0] != 0):
        sol = diagonal_regression_limit(X, y, L, 1.0, first[0])
        return _from_solution("point", sol, "Yun et al. (2021) Corollary 5")
    if N == 1 and L == 2:
        try:
            sol = two_layer_limit_point(mdl, X[0], float(y[0]), params0, 1.0)
        except (ValueError, TypeError) as exc:
            return _none(f"Theorem 6 does not apply: {exc}", "Yun et al. (2021) Theorem 6")
        return _from_solution("point", sol, "Yun et al. (2021) Theorem 6")
    if isinstance(mdl, Convolutional) and mdl.kernel_sizes is None and yun_init:
        try:
            sol = conv_even_regression_limit(X, y, L, 1.0, first[0])
        except ValueError as exc:
            return _none(f"Corollary 6 does not apply: {exc}", "Yun et al. (2021) Corollary 6")
        return _from_solution("point", sol, "Yun et al. (2021) Corollary 6")
    return _none(
        "the regression limit depends on the initialization and is known (Yun et al. 2021, "
        "Theorem 5 and Corollaries 5-7, Theorem 6) for Yun's initialization w_l(0) = alpha "
        "w_bar (l < L), w_L(0) = 0 on diagonal and full-width convolutional networks (even "
        "data), and for two-layer networks on one point; this case is none of those.",
        "Yun et al. (2021) Theorem 5",
    )


def orthogonal_decomposition(
    M: np.ndarray, rtol: float = 1e-10, seed: int = 0
) -> tuple[np.ndarray | None, str]:
    """Yun et al. (2021) Assumption 1 for a data tensor ``M`` of shape (d, k_1, ..., k_L).

    Looks for matrices ``U_l`` with orthonormal columns and ``S`` (m x d) with
    ``M(x) = sum_k [S x]_k  U_1[:, k] (x) ... (x) U_L[:, k]`` for every x. For a random
    combination ``M(r)`` the left singular vectors of every mode unfolding are the only
    candidates for ``U_l`` when the singular values are distinct (higher-order SVD); every
    ``M_j`` must then have a diagonal core in those bases, whose diagonal is column j of S.
    Returns ``(S, "")`` or ``(None, reason)``.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.ndim < 3:
        raise ValueError(f"M must have shape (d, k_1, ..., k_L) with L >= 2; got {M.shape}.")
    d, ks = M.shape[0], M.shape[1:]
    L = len(ks)
    scale = max(float(np.abs(M).max()), 1e-300)
    Mr = np.tensordot(np.random.default_rng(seed).standard_normal(d), M, axes=1)
    m = min(ks)
    bases = []
    for layer in range(L):
        unfold = np.moveaxis(Mr, layer, 0).reshape(ks[layer], -1)
        U, sv, _ = np.linalg.svd(unfold, full_matrices=True)
        top = sv[: m + 1] if len(sv) > m else sv
        if len(top) > 1 and np.abs(np.diff(top[:m])).min(initial=np.inf) <= 1e-8 * top[0]:
            return None, "a random combination of the M_j has repeated singular values"
        bases.append(U)
    S = np.empty((m, d))
    diag = (np.arange(m),) * L
    for j in range(d):
        core = M[j]
        for layer, U in enumerate(bases):
            core = np.moveaxis(np.tensordot(U.T, core, axes=([1], [layer])), 0, layer)
        S[:, j] = core[diag]
        off = core.copy()
        off[diag] = 0.0
        if np.abs(off).max() > rtol * scale * max(1, d) * 10 ** (L - 2):
            return None, f"M_{j} has no diagonal core in the singular bases of the others"
    return S, ""
