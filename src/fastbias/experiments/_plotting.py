"""Shared drawing helpers for the reproduce targets (matplotlib, Agg backend).

Plot functions only draw what a target's tables hold; these helpers set a consistent look,
save without clipped labels, and draw theory guides (``c * law(t)`` fitted by one constant to
the measured curve, dashed black) beside measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["figure", "save", "history_columns", "loglog_guide"]


def figure(rows: int, cols: int, width: float | None = None, height: float | None = None):
    """A figure with ``rows x cols`` axes; returns ``(fig, axes)`` with ``axes`` flat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        rows, cols, figsize=(width or 4.2 * cols, height or 3.8 * rows), squeeze=False
    )
    return fig, list(axes.ravel())


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Save (tight layout, tight bounding box: no clipped labels) and close the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def history_columns(history, prefix: str = "", iterates: bool = True) -> dict[str, Any]:
    """A run's history as CSV columns: every column, then the iterates ``w_0 .. w_{d-1}``."""
    cols = {f"{prefix}{k}": np.asarray(v) for k, v in history.columns.items()}
    if iterates and history.iterates is not None and np.ndim(history.iterates) == 2:
        its = np.asarray(history.iterates, dtype=np.float64)
        for j in range(its.shape[1]):
            cols[f"{prefix}w_{j}"] = its[:, j]
    return cols


def loglog_guide(
    ax,
    t: Any,
    values: Any,
    law: Callable[[np.ndarray], np.ndarray],
    label: str,
    t_min: float | None = None,
) -> None:
    """Draw ``c * law(t)`` (dashed black) with ``c`` matched to ``values`` at the last step.

    ``t_min``: draw the guide from there on (where the asymptotic law applies).
    """
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0) & (t > 1)
    if t_min is not None:
        ok &= t >= t_min
    if ok.sum() < 2:
        return
    ts, vs = t[ok], v[ok]
    c = vs[-1] / law(ts[-1:])[0]
    ax.plot(ts, c * law(ts), "k--", lw=1, alpha=0.7, label=label)
