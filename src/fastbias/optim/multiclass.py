"""Multi-class GD: the softmax cross-entropy of a linear K-class predictor (Soudry et al.
2018, Section 4.1, Appendix C), as a thin call into the spec pipeline."""

from __future__ import annotations

from typing import Any

from .driver import execute
from .results import MulticlassRun, multiclass_log_loss
from .spec import build_spec

__all__ = ["train_multiclass", "MulticlassRun", "multiclass_log_loss"]


def train_multiclass(
    X: Any,
    labels: Any,
    steps: int = 1000,
    lr: float | None = None,
    *,
    W0: Any = None,
    step_rule: str = "fixed",
    record: int = 10,
) -> MulticlassRun:
    """GD on the softmax cross-entropy of a linear K-class predictor, in compiled chunks.

    Soudry et al. (2018) Section 4.1, Appendix C: ``L(W) = sum_n log sum_k exp((w_k -
    w_{y_n}).x_n)`` (eq. C.1); on separable data ``W(t)/||W(t)||`` converges to the direction
    of the K-class SVM (eq. 4.1). The gradient is computed in log domain (log-sum-exp), so the
    step never underflows to zero in the normalized and loss-scaled rules.

    Parameters
    ----------
    X : (N, d) array
    labels : (N,) array of any K >= 2 distinct labels
    steps : int
    lr : float, optional
        Default ``1 / sigma_max(X)**2`` (``L`` is ``sigma_max**2 / 2``-smooth, so this is
        below ``2 / beta`` everywhere).
    W0 : (d, K) array, optional
        Initial ``W`` (default 0).
    step_rule : {"fixed", "normalized", "loss-scaled"}
    record : int
        Checkpoints per decade.

    Returns
    -------
    MulticlassRun
    """
    spec = build_spec(
        X, labels, loss="cross-entropy", steps=steps, lr=lr, init=W0, step_rule=step_rule,
        record=record,
    )  # fmt: skip
    return execute(spec)
