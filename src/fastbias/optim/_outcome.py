"""How a run ended, said truthfully: step-size advice on divergence, frozen iterates, and the
time a long run will take."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .._warn import warn_user
from ..exceptions import NotSeparableError
from .reference import cached_max_margin

__all__ = [
    "lr_advice",
    "frozen_status",
    "time_estimate_note",
    "warn_if_not_separable",
    "LONG_RUN_SECONDS",
]

#: A run projected to take longer than this says so up front (a warning when there is no
#: progress bar), with how to stop it.
LONG_RUN_SECONDS = 600.0


def lr_advice(lr: float, safe_lr: float) -> tuple[str, float]:
    """``(advice, suggested_lr)`` after a run with step size ``lr`` failed.

    ``safe_lr`` is the step that is stable at the starting point. When ``lr`` is above it,
    the advice is that bound; when ``lr`` was already at or below it (the curvature grew
    along the run, or the step rule grew the step), the advice is ten times smaller than the
    ``lr`` that failed, never the same value.
    """
    if not (np.isfinite(safe_lr) and safe_lr > 0):
        return (
            f"lr={lr:g} is too large, and the step that is stable at the start is not "
            "representable in float64 here: rescale X (GD on X / c with lr * c**2 is the same "
            "run)",
            lr / 10,
        )
    if lr > safe_lr * (1 + 1e-9):
        return (
            f"lr={lr:g} is too large for this data and starting point; try lr <= "
            f"{safe_lr:.3g} (stable at the start, see fastbias.optim.gd.default_lr)",
            safe_lr,
        )
    return (
        f"lr={lr:g} failed although it is not above {safe_lr:.3g}, the step that is stable at "
        f"the start (the curvature grew along the run); try lr <= {lr / 10:.3g}, or "
        "step_rule='normalized' / 'loss-scaled-backtracking'",
        lr / 10,
    )


def frozen_status(
    steps: np.ndarray, thetas: np.ndarray, scales: np.ndarray, log_loss_end: float | None
) -> str | None:
    """The status of a run whose iterate stopped moving, or None when it still moves.

    The last two recorded rows (at different steps) being bit-identical means every update in
    between rounded away. When the loss has underflowed float64 (``lr`` far too large pushed
    the margins past ~745, where fixed steps ``lr exp(-margin) ...`` are exactly zero) that is
    ``"loss underflow: iterate frozen"``. Otherwise the run has come to rest in float64 (at a
    minimizer of a non-separable problem, or with a tiny ``lr``): no status change.
    """
    if len(steps) < 2 or steps[-1] == steps[-2]:
        return None
    # (the rows of one array: their == is np.array_equal's, without its checks and wrapping)
    if scales[-1] != scales[-2] or not (thetas[-1] == thetas[-2]).all():
        return None
    if log_loss_end is not None and log_loss_end < math.log(np.finfo(np.float64).tiny):
        return "loss underflow: iterate frozen"
    return None


def time_estimate_note(steps: int, seconds: float) -> str:
    """``"about 14 h"`` style text for a projected wall time."""
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 7200:
        return f"about {seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"about {seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"about {seconds / 86400:.0f} days"
    return f"about {seconds / (365 * 86400):.3g} years"


def warn_if_not_separable(
    X: np.ndarray, y: np.ndarray, history, stacklevel: int | None = None, key: bytes | None = None
) -> None:
    """After a classification run that ended without separating the data, say whether the
    data are separable at all (a linear-predictor model cannot reach zero loss otherwise).
    ``key``: the data's digest (``RunSpec.data_key``) when the caller has it; ``stacklevel``
    that of the caller's warnings (None: the first frame outside fastbias, found only when
    there is a warning)."""
    if "min_margin" not in history or history["min_margin"][-1] > 0:
        return
    try:
        cached_max_margin(X, y, key)  # (solved once per data set)
    except NotSeparableError as exc:
        message = (
            "the run ended with min margin <= 0 and X, y are not linearly separable, so no "
            f"linear predictor reaches zero loss ({str(exc).split(':')[0]})."
        )
        if stacklevel is None:
            warn_user(message)
        else:
            warnings.warn(message, stacklevel=stacklevel + 1)
