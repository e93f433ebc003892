"""Multi-class hard-margin SVM, Soudry et al. (2018) eq. (4.1) and Appendix C.

    argmin_W sum_k ||w_k||^2  s.t.  (w_{y_n} - w_k)^T x_n >= 1   for all n and k != y_n,

the conjectured limit direction of gradient descent on the cross-entropy loss of a linear
K-class model. With ``w = vec(W^T)`` every constraint is ``w^T x_tilde_{n,k} >= 1`` for the
lifted sample ``x_tilde_{n,k} = (e_{y_n} - e_k) (x) x_n`` (Appendix C), so (4.1) is the binary
problem of eq. (2.4) on ``N (K - 1)`` lifted samples, solved exactly by the L2 solver.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastbias._validation import check_positive, check_X_y
from fastbias.exceptions import NotSeparableError

from ._results import MulticlassMarginSolution
from .l2_margin import max_margin as _l2_max_margin

__all__ = ["max_margin_multiclass", "lift"]


def _labels(labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if labels is None:
        raise ValueError("multiclass=True needs class labels y (one per sample).")
    lab = np.asarray(labels)
    if lab.ndim != 1:
        lab = np.squeeze(lab)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"X has {n} rows but the labels have shape {np.shape(labels)}.")
    if lab.dtype.kind == "f" and not np.all(np.isfinite(lab)):
        raise ValueError("labels contain NaN or inf.")
    classes, idx = np.unique(lab, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"multi-class max margin needs at least 2 classes; got {classes.size} "
            f"({classes.tolist()!r})."
        )
    return classes, idx.astype(np.int64)


def lift(X: np.ndarray, idx: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Lifted samples ``(e_{y_n} - e_k) (x) x_n``, k != y_n (rows), and their (n, k) pairs."""
    N, d = X.shape
    ks = np.arange(K)
    pairs = np.array([(n, k) for n in range(N) for k in ks if k != idx[n]], dtype=np.int64)
    L = np.zeros((pairs.shape[0], K * d))
    rows = np.arange(pairs.shape[0])
    n_of, k_of = pairs[:, 0], pairs[:, 1]
    cols = np.arange(d)
    L[rows[:, None], idx[n_of][:, None] * d + cols] = X[n_of]
    L[rows[:, None], k_of[:, None] * d + cols] = -X[n_of]
    return L, pairs


def max_margin_multiclass(X: Any, labels: Any, *, tol: float = 1e-10) -> MulticlassMarginSolution:
    """K-class hard-margin SVM (Soudry et al. eq. 4.1), exactly.

    Parameters
    ----------
    X : array_like of shape (N, d)
    labels : array_like of shape (N,)
        Any K >= 2 distinct class labels; ``classes = numpy.unique(labels)``.
    tol : float, default 1e-10
        Largest accepted KKT residual of the lifted binary problem.

    Returns
    -------
    MulticlassMarginSolution

    Raises
    ------
    NotSeparableError
        No W classifies every sample correctly with a positive margin.
    """
    X, _ = check_X_y(X, None)
    tol = check_positive(tol, "tol")
    N, d = X.shape
    classes, idx = _labels(labels, N)
    K = classes.size
    L, pairs = lift(X, idx, K)
    try:
        sol = _l2_max_margin(L, None, tol=tol)
    except NotSeparableError:
        raise NotSeparableError(
            "X is not linearly separable into its classes: no W (no bias) has "
            "(w_{y_n} - w_k)^T x_n > 0 for every sample n and every other class k (eq. 4.1 is "
            "infeasible). Append a constant-1 feature to X for per-class biases."
        ) from None
    W = sol.coef.reshape(K, d).copy()
    nW = float(np.linalg.norm(W))
    dual = np.zeros((N, K))
    dual[pairs[:, 0], pairs[:, 1]] = sol.dual
    support = pairs[sol.support].copy()
    direction = W / nW
    for arr in (W, direction, dual, support, classes):
        arr.setflags(write=False)
    return MulticlassMarginSolution(
        coef=W,
        margin=1.0 / nW,
        direction=direction,
        classes=classes,
        support=support,
        dual=dual,
        kkt_residual=sol.kkt_residual,
        status=sol.status,
    )
