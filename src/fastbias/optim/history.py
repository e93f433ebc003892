"""What a run records: log-spaced checkpoints of the iterate, and diagnostics derived from them."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import angle_gap, direction_distance, fit_rates, margin_gap, norm
from ..losses import get_loss, logsumexp

__all__ = ["checkpoint_steps", "History", "Run", "build_history"]


def checkpoint_steps(steps: int, per_decade: int = 10) -> np.ndarray:
    """Log-spaced step numbers in ``[1, steps]``: ``round(10**(k/per_decade))``, plus ``steps``."""
    if per_decade < 1:
        raise ValueError(f"record must be >= 1 points per decade; got {per_decade}.")
    k_max = int(np.floor(np.log10(steps) * per_decade + 1e-9))
    grid = np.round(10.0 ** (np.arange(k_max + 1) / per_decade)).astype(np.int64)
    return np.unique(np.concatenate([grid[grid <= steps], [steps]])).astype(np.int64)


class History:
    """Columns recorded at checkpoint steps, plus the iterates themselves.

    Index it by column name (``h["angle_gap"]``); ``h.iterates`` is the ``(K, d)`` array of
    ``w(t)`` at ``h["step"]``; ``h.meta`` holds the run's settings. Write it with
    :meth:`to_csv`; print it with :meth:`table`.
    """

    def __init__(self, columns: dict[str, np.ndarray], iterates: np.ndarray, meta: dict[str, Any]):
        self.columns = columns
        self.iterates = iterates
        self.meta = meta

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(
                f"history has no column {name!r}; columns are {', '.join(self.columns)}."
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return len(self.columns["step"])

    def to_csv(self, path: str | Path) -> Path:
        """Write the columns (one row per checkpoint) and the iterates ``w_0 .. w_{d-1}``."""
        path = Path(path)
        names = list(self.columns)
        d = self.iterates.shape[1]
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names + [f"w_{j}" for j in range(d)])
            for i in range(len(self)):
                row = [repr(int(self.columns["step"][i]))]
                row += [repr(float(self.columns[c][i])) for c in names[1:]]
                row += [repr(float(x)) for x in self.iterates[i]]
                writer.writerow(row)
        return path

    def table(self, columns: list[str] | None = None, max_rows: int = 25) -> str:
        """A fixed-width text table of selected columns at up to ``max_rows`` checkpoints."""
        columns = columns or [c for c in self.columns if c != "loss"]
        idx = np.arange(len(self))
        if len(idx) > max_rows:
            idx = np.unique(np.round(np.linspace(0, len(self) - 1, max_rows)).astype(int))
        head = " ".join(f"{c:>{max(12, len(c))}}" for c in columns)
        lines = [head]
        for i in idx:
            cells = []
            for c in columns:
                width = max(12, len(c))
                v = self.columns[c][i]
                cells.append(f"{int(v):>{width}d}" if c == "step" else f"{float(v):>{width}.5g}")
            lines.append(" ".join(cells))
        return "\n".join(lines)


def build_history(
    steps: np.ndarray,
    iterates: np.ndarray,
    Z: np.ndarray,
    loss: str,
    reference: np.ndarray | None,
    w_tilde: np.ndarray | None,
    meta: dict[str, Any],
) -> History:
    """Derive every column from the recorded iterates (rows ``w(t)`` at ``steps``).

    Columns: ``step``, ``loss``, ``log_loss``, ``norm``, ``min_margin`` (``min_n z_n.w``),
    ``normalized_margin`` (``min_n z_n.w/||w||``) and, with a reference ``w_hat``:
    ``angle_gap`` (eq. 3.2), ``direction_distance`` (eq. 3.1), ``margin_gap`` (eq. 3.3),
    ``residual_norm`` (``||w(t) - w_hat log t||``, eq. 2.3) and, when Theorem 4 applies,
    ``theorem4_residual_norm`` (``||w(t) - w_hat log t - w_tilde||``). Extended-precision
    iterates are processed in ``np.longdouble`` and stored as float64.
    """
    W = np.asarray(iterates)
    dt = W.dtype
    Zd = np.asarray(Z, dtype=dt)
    margins = W @ Zd.T  # (K, N)
    lossobj = get_loss(loss)
    log_loss = np.array(
        [logsumexp(lossobj.log_value(np.asarray(m, dtype=np.float64))) for m in margins]
    )
    w_norm = norm(W, axis=1)
    min_margin = margins.min(axis=1)
    cols: dict[str, np.ndarray] = {
        "step": np.asarray(steps, dtype=np.int64),
        "loss": np.exp(log_loss),
        "log_loss": log_loss,
        "norm": np.asarray(w_norm, dtype=np.float64),
        "min_margin": np.asarray(min_margin, dtype=np.float64),
        "normalized_margin": np.asarray(
            min_margin / np.where(w_norm > 0, w_norm, np.nan), dtype=np.float64
        ),
    }
    if reference is not None:
        ref = np.asarray(reference, dtype=dt)
        nonzero = w_norm > 0
        for name, fn in (
            ("angle_gap", angle_gap),
            ("direction_distance", direction_distance),
        ):
            col = np.full(len(W), np.nan)
            if nonzero.any():
                col[nonzero] = np.asarray(fn(W[nonzero], ref), dtype=np.float64)
            cols[name] = col
        col = np.full(len(W), np.nan)
        if nonzero.any():
            col[nonzero] = np.asarray(margin_gap(W[nonzero], ref, Zd), dtype=np.float64)
        cols["margin_gap"] = col
        logt = np.log(np.asarray(steps, dtype=dt))
        residual = W - logt[:, None] * ref[None, :]
        cols["residual_norm"] = np.asarray(norm(residual, axis=1), dtype=np.float64)
        if w_tilde is not None:
            r4 = residual - np.asarray(w_tilde, dtype=dt)[None, :]
            cols["theorem4_residual_norm"] = np.asarray(norm(r4, axis=1), dtype=np.float64)
    return History(cols, W, meta)


@dataclass
class Run:
    """The result of :func:`fastbias.train`.

    Attributes
    ----------
    coef : ndarray
        The final predictor ``beta`` (for the linear model, ``w(T)``).
    params : list of ndarray
        The final parameters, one array per layer (``[w]`` for the linear model).
    history : History
        Checkpointed diagnostics.
    status : str
        ``"completed"`` or ``"interrupted"`` (Ctrl-C: the steps finished so far are kept).
    steps_done : int
        Number of GD steps taken.
    reference : object or None
        The max-margin solution (or user direction) the gaps are measured against.
    """

    coef: np.ndarray
    params: list[np.ndarray]
    history: History
    status: str
    steps_done: int
    settings: dict[str, Any] = field(default_factory=dict)
    reference: Any = None
    elapsed: float = 0.0

    def rates(self, t_min: int | None = None, t_max: int | None = None):
        """Fitted convergence rates (:func:`fastbias.diagnostics.fit_rates`)."""
        return fit_rates(self.history, t_min=t_min, t_max=t_max)

    def __repr__(self) -> str:
        return (
            f"Run(model={self.settings.get('model')!r}, loss={self.settings.get('loss')!r}, "
            f"steps_done={self.steps_done}, status={self.status!r}, coef={self.coef!r})"
        )
