"""What a run records: log-spaced checkpoints of the iterate, and diagnostics derived from them.

Every column is computed from the scaled parameters ``theta = 2**e theta_s`` the kernels carry,
so what a user reads back stays finite and accurate however far a run went:

* scale-free quantities (gaps, normalized margins, unit directions) come from ``theta_s``;
* magnitudes are also kept as natural logs (``log_norm``, ``log_min_margin``,
  ``log_theta_norm``, ``log_loss``), exact at any scale;
* a magnitude that does not fit in float64 in some row (``norm``, ``min_margin``,
  ``theta_norm``, ``layer_norm_l``, ``log_loss`` once ``-log L`` passes 1.8e308, the iterates)
  is left out of :attr:`History.columns`; reading it raises an ``OverflowError`` that names
  the step where it overflows and the column to read instead (:attr:`History.overflowed`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import angle_gap, direction_distance, fit_rates, margin_gap, norm
from ..losses import get_loss

__all__ = [
    "checkpoint_steps",
    "History",
    "Run",
    "build_history",
    "build_history_numpy",
    "build_network_history",
    "build_network_history_numpy",
    "LOG_FLOOR",
]

_LN2 = math.log(2.0)
#: What a ``log_*`` column holds where its quantity is 0 (or, for ``log_min_margin``, <= 0:
#: the data are not separated yet): the log of the smallest normal float64, -708.40. Every
#: positive value is reported exactly (also below this).
LOG_FLOOR = float(np.log(np.finfo(np.float64).tiny))


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
    predictors ``beta(t)`` (``w(t)`` for the linear model; the parameters ``theta(t)`` for a
    ReLU network) at ``h["step"]``, and ``h.directions`` the same rows divided by their norms
    (always finite). ``h.meta`` holds the run's settings. Write it with :meth:`to_csv`; print
    it with :meth:`table`.

    Past float64 (runs whose norms or margins pass 1.8e308), the magnitudes that overflow are
    not columns: ``h.overflowed`` maps each to the reason and the column to read instead, and
    ``h[name]`` (or ``h.iterates``) raises ``OverflowError`` with that text. The exact rows
    are ``h.scaled_iterates * 2**h.iterate_scale[:, None]``.
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        iterates: np.ndarray | None,
        meta: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
        *,
        overflowed: dict[str, str] | None = None,
        directions: np.ndarray | None = None,
        scaled_iterates: np.ndarray | None = None,
        iterate_scale: np.ndarray | None = None,
    ):
        self.columns = columns
        self.meta = meta
        # per-checkpoint arrays that are not one number per row (networks: per-neuron norms
        # and activation patterns), indexed by checkpoint first
        self.arrays = arrays or {}
        self.overflowed: dict[str, str] = dict(overflowed or {})
        self._iterates = iterates
        if iterates is not None:
            scaled_iterates = iterates if scaled_iterates is None else scaled_iterates
        elif scaled_iterates is None:
            raise ValueError("History needs the iterates or their scaled form.")
        self.scaled_iterates = scaled_iterates
        n = len(scaled_iterates)
        self.iterate_scale = (
            np.zeros(n, dtype=np.int64)
            if iterate_scale is None
            else np.asarray(iterate_scale, dtype=np.int64)
        )
        self._directions = directions

    def with_columns(self, columns: dict[str, np.ndarray], cls: type | None = None) -> History:
        """The same record (iterates, arrays, overflow notes) with other columns."""
        out = (cls or type(self)).__new__(cls or type(self))
        out.__dict__.update(self.__dict__)
        out.columns = columns
        out.overflowed = dict(self.overflowed)
        return out

    @property
    def iterates(self) -> np.ndarray:
        """The recorded rows; ``OverflowError`` when they do not fit in float64."""
        if self._iterates is None:
            raise OverflowError(self.overflowed["iterates"])
        return self._iterates

    @property
    def directions(self) -> np.ndarray:
        """The recorded rows divided by their Euclidean norms (zero rows stay zero)."""
        if self._directions is None:
            S = np.asarray(self.scaled_iterates)
            n = norm(S, axis=1) if S.size else np.zeros(len(S))
            safe = np.where(n > 0, n, 1)
            self._directions = S / safe[:, None]
        return self._directions

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            if name in self.overflowed:
                raise OverflowError(self.overflowed[name]) from None
            raise KeyError(
                f"history has no column {name!r}; columns are {', '.join(self.columns)}."
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def _csv_rows(self) -> tuple[list[str], np.ndarray]:
        """The iterate part of the CSV: ``w_j`` (the rows), or ``u_j`` (the directions) when
        the rows overflow float64 (then ``log_norm`` or ``log_theta_norm`` has the norms)."""
        if self._iterates is not None:
            rows, prefix = np.asarray(self._iterates), "w"
        else:
            rows, prefix = np.asarray(self.directions), "u"
        rows = rows.reshape(len(rows), -1)
        return [f"{prefix}_{j}" for j in range(rows.shape[1])], rows

    def to_csv(self, path: str | Path) -> Path:
        """Write the columns (one row per checkpoint) and the iterates ``w_0 .. w_{d-1}``
        (their directions ``u_0 .. u_{d-1}`` when the iterates overflow float64), through
        pandas when it is installed and the same file without it."""
        from .._tidy import write_history_csv

        return write_history_csv(self, path)

    def _fmt(self, name: str, v: Any, width: int) -> str:
        return f"{int(v):>{width}d}" if name == "step" else f"{float(v):>{width}.5g}"

    def table(self, columns: list[str] | None = None, max_rows: int = 25) -> str:
        """A fixed-width text table of selected columns at up to ``max_rows`` checkpoints."""
        columns = columns or [c for c in self.columns if c != "loss"]
        for c in columns:
            self[c]  # a clear error for unknown or overflowed columns
        idx = np.arange(len(self))
        if len(idx) > max_rows:
            idx = np.unique(np.round(np.linspace(0, len(self) - 1, max_rows)).astype(int))
        head = " ".join(f"{c:>{max(12, len(c))}}" for c in columns)
        lines = [head]
        for i in idx:
            lines.append(
                " ".join(self._fmt(c, self.columns[c][i], max(12, len(c))) for c in columns)
            )
        return "\n".join(lines)

    # -- tidy views (pandas / xarray are optional extras, imported on use) --------------

    def to_pandas(self, iterates: bool = False):
        """A pandas DataFrame with one row per checkpoint and one column per history column
        (``step``, ``loss``, ``log_loss``, ``norm``, ..., as listed in :func:`build_history`).

        Parameters
        ----------
        iterates : bool
            Also add the iterate entries as columns ``w_0 .. w_{d-1}`` (as in :meth:`to_csv`;
            ``u_j``, the directions, when the iterates overflow float64).

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            Without pandas (``pip install "fastbias[pandas]"``).
        """
        from .._tidy import history_frame

        return history_frame(self, iterates=iterates)

    def to_xarray(self):
        """An xarray Dataset indexed by ``step``: every column, the iterates on
        ``(step, component)`` and, for networks, the per-neuron arrays of :attr:`arrays`
        (``neuron_norms_l`` on ``(step, neuron_l)``, ``active_l`` on ``(step, sample,
        neuron_l)``); the run's settings are the attributes.

        Raises
        ------
        ImportError
            Without xarray (``pip install "fastbias[xarray]"``).
        """
        from .._tidy import history_dataset

        return history_dataset(self)


# ---- numerics on scaled rows -----------------------------------------------------------------


def _normalize_rows(A: np.ndarray, exps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(A_n, e_n)`` with ``2**exps[k] A[k] = 2**e_n[k] A_n[k]`` exactly and every nonzero
    row's largest entry in [0.5, 1) (zero rows stay zero)."""
    amax = np.abs(A).max(axis=1) if A.shape[1] else np.zeros(len(A), A.dtype)
    _, ex = np.frexp(amax)
    ex = ex.astype(np.int64)
    return np.ldexp(A, -ex[:, None]), np.asarray(exps, dtype=np.int64) + ex


def _unit_rows_if_extreme(thetas: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameter rows far from unit scale (a runner that does not rescale, huge inits) as
    ``2**e' theta'`` with ``theta'`` near unit scale, so a depth-L product cannot overflow;
    rows within ``2**+-64`` are left as they are (bit-identical columns)."""
    amax = np.abs(thetas).max(axis=1) if thetas.shape[1] else np.zeros(len(thetas))
    if len(amax) and 2.0**-64 <= amax.min() and amax.max() <= 2.0**64:
        return thetas, e  # (the common case, in two reductions)
    extreme = (amax > 2.0**64) | ((amax > 0) & (amax < 2.0**-64))
    if not np.any(extreme):
        return thetas, e
    return _normalize_rows(thetas, e)


def _log_scaled(mant: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """``log(mant * 2**exps)`` (natural log), :data:`LOG_FLOOR` where ``mant <= 0``."""
    mant = np.asarray(mant)
    out = np.full(mant.shape, LOG_FLOOR)
    pos = mant > 0
    out[pos] = np.asarray(np.log(mant[pos]), dtype=np.float64) + np.asarray(exps)[pos] * _LN2
    return out


def _ldexp64(mant: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """``mant * 2**exps`` in float64 (inf where it does not fit; no warning)."""
    with np.errstate(over="ignore"):
        return np.ldexp(np.asarray(mant, dtype=np.float64), np.asarray(exps, dtype=np.int64))


def _log_loss_rows(margins_s: np.ndarray, exps: np.ndarray, lossobj) -> np.ndarray:
    """``log sum_n l(m_n)`` per row for margins ``m = 2**exps[k] margins_s[k]``.

    ``log L = -m_min + log sum_n exp(-(m_n - m_min))`` with the differences taken on the
    scaled margins (exact for the exp loss; for the logistic loss when ``m_min > 40``, where
    ``log1p(e^-m) = e^-m`` to 1e-18 relative); otherwise the loss's own log value. ``-inf``
    only where ``m_min`` itself overflows float64 (then ``log L`` is not representable).
    """
    s = np.asarray(margins_s, dtype=np.float64)
    exps = np.asarray(exps, dtype=np.int64)
    K = len(s)
    out = np.empty(K)
    if K == 0:
        return out
    s_min = s.min(axis=1)
    m_min = _ldexp64(s_min, exps)
    if lossobj.code == 0:  # every row shifted (the branch below without the row selection)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            shifted = np.ldexp(s - s_min[:, None], exps[:, None])
            out[:] = -m_min + np.log(np.sum(np.exp(-shifted), axis=1))
        return out
    shift = m_min > 40.0
    if shift.any():  # all rows at once (the history of a short run is a few rows)
        shifted = _ldexp64(s[shift] - s_min[shift, None], exps[shift, None])  # >= 0 or inf
        with np.errstate(under="ignore", divide="ignore"):
            out[shift] = -m_min[shift] + np.log(np.sum(np.exp(-shifted), axis=1))
    if not shift.all():  # logistic, margins moderate: every margin fits in float64 here
        rest = ~shift
        a = lossobj.log_value(_ldexp64(s[rest], exps[rest, None]))
        top = a.max(axis=1)
        fine = np.isfinite(top)
        lse = top.copy()
        if fine.any():
            lse[fine] = top[fine] + np.log(np.sum(np.exp(a[fine] - top[fine, None]), axis=1))
        out[rest] = lse
    return out


def _log_half_sumsq(R: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """``log(sum_n r_n**2 / 2)`` per row for ``r = 2**exps[k] R[k]``, with no under- or
    overflow (:data:`LOG_FLOOR` where every residual is exactly 0)."""
    R = np.asarray(R, dtype=np.float64)
    amax = np.max(np.abs(R), axis=1)
    safe = np.where(amax > 0, amax, 1.0)
    ssq = np.sum((R / safe[:, None]) ** 2, axis=1)
    out = np.full(len(R), LOG_FLOOR)
    ok = amax > 0
    out[ok] = np.log(0.5 * ssq[ok]) + 2.0 * (np.log(amax[ok]) + np.asarray(exps)[ok] * _LN2)
    return out


def _residuals(out_s, exps, targets) -> tuple[np.ndarray, np.ndarray]:
    """``(R, rexp)`` with ``2**rexp[k] R[k] = 2**exps[k] out_s[k] - targets`` and no overflow:
    rows with ``exps <= 0`` in plain float64 (``rexp = 0``), the others scaled."""
    exps = np.asarray(exps, dtype=np.int64)
    R = np.empty(out_s.shape, dtype=out_s.dtype)
    rexp = np.where(exps > 0, exps, 0)
    with np.errstate(under="ignore"):
        for k in range(len(out_s)):
            if exps[k] > 0:
                R[k] = out_s[k] - np.ldexp(targets, -int(exps[k]))
            else:
                R[k] = np.ldexp(out_s[k], int(exps[k])) - targets
    return R, rexp


def _signed_ratio_log(num: np.ndarray, log_den: np.ndarray) -> np.ndarray:
    """``num / exp(log_den)`` computed in log domain (0 where ``num`` is 0 or the denominator
    is the floor, i.e. the denominator is 0)."""
    num = np.asarray(num, dtype=np.float64)
    out = np.zeros(num.shape)
    ok = (num != 0) & (log_den > LOG_FLOOR)
    with np.errstate(under="ignore"):
        out[ok] = np.sign(num[ok]) * np.exp(np.log(np.abs(num[ok])) - log_den[ok])
    return out


class _Columns:
    """Collects columns; magnitudes that overflow float64 go to ``overflowed`` instead."""

    def __init__(self, steps: np.ndarray, step_label: str = "step"):
        self.steps = steps
        self.step_label = step_label
        self.cols: dict[str, np.ndarray] = {}
        self.overflowed: dict[str, str] = {}

    def _where(self, values: np.ndarray) -> str:
        bad = int(np.argmax(~np.isfinite(values)))
        return (
            f"{self.step_label} {self.steps[bad]:g}"
            if self.steps.dtype.kind == "f"
            else (f"{self.step_label} {int(self.steps[bad])}")
        )

    def add(self, name: str, values: np.ndarray, instead: str) -> None:
        """``values`` as a float64 column, or an overflow note naming ``instead``."""
        values = np.asarray(values, dtype=np.float64)
        if np.all(np.isfinite(values)):
            self.cols[name] = values
        else:
            self.overflowed[name] = (
                f"{name} overflows float64 from {self._where(values)} on; {instead}."
            )


def _ref_columns(cols: _Columns, U, nonzero, ref, Zd) -> None:
    """Angle gap, direction distance and margin gap of the unit rows ``U`` against ``ref``
    (Soudry eqs. 3.1-3.3). A zero predictor has cosine 0 with every direction: angle gap 1,
    direction distance 1 and margin gap the reference's margin."""
    ref = np.asarray(ref, dtype=U.dtype)
    K = len(U)
    dd, ag, mg = np.ones(K), np.ones(K), np.empty(K)
    vu = ref / norm(ref)
    c = Zd @ vu
    mg[:] = float(c.min())
    if nonzero.any():
        Un = U[nonzero]
        dd[nonzero] = np.asarray(direction_distance(Un, ref), dtype=np.float64)
        ag[nonzero] = np.asarray(angle_gap(Un, ref), dtype=np.float64)
        mg[nonzero] = np.asarray(margin_gap(Un, ref, Zd), dtype=np.float64)
    cols.cols["angle_gap"] = ag
    cols.cols["direction_distance"] = dd
    cols.cols["margin_gap"] = mg


def _iterate_note(cols: _Columns, values: np.ndarray, what: str, log_col: str) -> str:
    bad = ~np.all(np.isfinite(np.asarray(values, dtype=np.float64)), axis=1)
    where = cols._where(np.where(bad, np.inf, 0.0))
    return (
        f"the {what} overflow float64 from {where} on; h.directions holds the unit rows and "
        f"h[{log_col!r}] their log norms (exactly: h.scaled_iterates * 2**h.iterate_scale)"
    )


def _true_predictors(B: np.ndarray, e: np.ndarray, ex: np.ndarray) -> np.ndarray | None:
    """The recorded predictors at their true scale, ``B * 2**ex`` row by row (``B`` itself
    when no parameters were rescaled, ``e == 0``), or None when an entry does not fit
    float64."""
    if not e.any():
        return B if np.isfinite(np.asarray(B, dtype=np.float64)).all() else None
    with np.errstate(over="ignore"):
        cand = np.ldexp(B, ex[:, None])
    return cand if np.all(np.isfinite(np.asarray(cand, dtype=np.float64))) else None


def _predictor_history(cols: _Columns, B_true, Bn, bexp, U, meta) -> History:
    """The History of a linear-predictor run: its columns, the predictors ``B_true`` (or a note
    saying they overflow float64), directions ``U`` and scaled predictors ``Bn * 2**bexp``."""
    overflowed = cols.overflowed
    if B_true is None:
        overflowed["iterates"] = _iterate_note(
            cols, _ldexp64(Bn, bexp[:, None]), "predictors", "log_norm"
        )
    return History(
        cols.cols,
        B_true,
        meta,
        overflowed=overflowed,
        directions=U,
        scaled_iterates=Bn,
        iterate_scale=bexp,
    )


def build_history(
    steps: np.ndarray,
    thetas: np.ndarray,
    model,
    d: int,
    Z: np.ndarray,
    targets: np.ndarray,
    loss: str,
    reference: np.ndarray | None,
    w_tilde: np.ndarray | None,
    meta: dict[str, Any],
    theta_scale: np.ndarray | None = None,
) -> History:
    """Derive every column from the recorded parameters (rows ``theta(t)`` at ``steps``).

    The columns and their meaning are those of :func:`build_history_numpy`, the NumPy
    specification. Float64 rows are processed by one compiled call
    (:mod:`fastbias.kernels._numba_history`; equal to the NumPy columns to round-off), which
    keeps the fixed cost of a short run low; ``np.longdouble`` rows (extended precision) by
    the NumPy code.
    """
    thetas = np.asarray(thetas)
    if thetas.dtype != np.float64 or len(thetas) == 0:
        return build_history_numpy(
            steps, thetas, model, d, Z, targets, loss, reference, w_tilde, meta, theta_scale
        )
    return _build_history_compiled(
        steps, thetas, model, d, Z, targets, loss, reference, w_tilde, meta, theta_scale
    )


_CLASSIFICATION_COLUMNS = None  # (name, row, overflow advice or None), built on first use


def _column_layout():
    from ..kernels import _numba_history as nh

    log_loss_note = (
        "log L = -exp(log_min_margin) + log(sum_n exp(-(m_n - m_min))) and the second "
        "term is below log N, so log(-log L) = h['log_min_margin'] to float64 precision"
    )
    hint = "the iterates grow faster than log t here; read the gap columns"
    classification = [
        ("loss", nh.C_LOSS, "read log_loss"),
        ("log_loss", nh.C_LOG_LOSS, log_loss_note),
        ("norm", nh.C_NORM, "read log_norm"),
        ("log_norm", nh.C_LOG_NORM, None),
        ("min_margin", nh.C_MIN_MARGIN, "read log_min_margin"),
        ("log_min_margin", nh.C_LOG_MIN_MARGIN, None),
        ("normalized_margin", nh.C_NORMALIZED_MARGIN, None),
    ]
    gaps = [
        ("angle_gap", nh.C_ANGLE_GAP, None),
        ("direction_distance", nh.C_DIRECTION_DISTANCE, None),
        ("margin_gap", nh.C_MARGIN_GAP, None),
        ("residual_norm", nh.C_RESIDUAL_NORM, hint),
    ]
    theorem4 = [("theorem4_residual_norm", nh.C_THEOREM4_RESIDUAL_NORM, hint)]
    regression = [
        ("loss", nh.R_LOSS, "read log_loss"),
        ("log_loss", nh.R_LOG_LOSS, None),
        ("norm", nh.R_NORM, "read log_norm"),
        ("log_norm", nh.R_LOG_NORM, None),
        ("max_abs_residual", nh.R_MAX_ABS_RESIDUAL, "read log_loss"),
    ]
    distance = [("distance_to_reference", nh.R_DISTANCE, "the iterates overflow float64")]
    theta = [
        ("theta_norm", nh.D_THETA_NORM, "read log_theta_norm"),
        ("log_theta_norm", nh.D_LOG_THETA_NORM, None),
    ]
    margin_theta = [("normalized_margin_theta", nh.D_NORMALIZED_MARGIN_THETA, None)]
    return classification, gaps, theorem4, regression, distance, theta, margin_theta


_EMPTY = np.zeros(0)
_EMPTY_2D = np.zeros((0, 0))
_NO_OFFSETS = np.zeros(1, dtype=np.int64)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``: numba types a read-only array apart from a writable one, so
    the inputs that arrive either way (a cached reference is frozen, a user's is not) are
    passed one way, and ``history_rows`` compiles once (the suite had compiled six variants,
    ~10 s each cold, differing only in these flags)."""
    v = a.view()
    v.flags.writeable = False
    return v


def _build_history_compiled(
    steps, thetas, model, d, Z, targets, loss, reference, w_tilde, meta, theta_scale
) -> History:
    """:func:`build_history_numpy` for float64 rows, the per-row work in one compiled call."""
    global _CLASSIFICATION_COLUMNS
    if _CLASSIFICATION_COLUMNS is None:
        from ..kernels._numba_history import history_rows
        from ..models import Linear

        _CLASSIFICATION_COLUMNS = (_column_layout(), history_rows, Linear)
    layouts, history_rows, Linear = _CLASSIFICATION_COLUMNS
    classification, gaps, theorem4, regression, distance, theta, margin_theta = layouts
    K = len(thetas)
    linear = isinstance(model, Linear)
    steps = np.asarray(steps, dtype=np.int64)
    e = (
        np.zeros(K, dtype=np.int64)
        if theta_scale is None
        else np.asarray(theta_scale, dtype=np.int64)[:K]
    )
    if linear:
        B = thetas.reshape(K, d)
        th, offsets = _EMPTY_2D, _NO_OFFSETS
    else:
        if not _network_kernels().rows_in_range(thetas):  # (rows near unit scale: as they are)
            thetas, e = _unit_rows_if_extreme(thetas, e)
        B = np.asarray(model.predictors(thetas, d), dtype=np.float64).reshape(K, d)
        th = np.ascontiguousarray(thetas)
        offsets = _kernel_offsets(tuple(model.shapes(d))).copy()  # (writable, as kernels get)
    ex0 = e * model.depth
    Bn, bexp = _network_kernels().normalize_rows(B, ex0)  # (_normalize_rows, compiled)
    Zd = np.asarray(Z, dtype=np.float64)
    out_s = Bn @ Zd.T  # (K, N): margins (or predictions) / 2**bexp
    regression_run = loss == "squared"
    ref = _EMPTY if reference is None else np.asarray(reference, dtype=np.float64)
    wt = (
        _EMPTY_2D
        if (w_tilde is None or regression_run)
        else np.atleast_2d(np.asarray(w_tilde, dtype=np.float64))
    )
    code = 2 if regression_run else get_loss(loss).code
    vals, U, layer_norms = history_rows(
        np.ascontiguousarray(B), Bn, bexp, ex0, out_s, _read_only(Zd),
        _read_only(np.asarray(targets, np.float64)), regression_run, code, _read_only(ref),
        _read_only(wt), _read_only(steps), th, e, offsets, model.depth,
    )  # fmt: skip
    finite = np.isfinite(vals).all(axis=1).tolist()  # (a list: indexed ~10 times below)
    cols = _Columns(steps)
    cols.cols["step"] = steps
    layout = regression if regression_run else classification
    if reference is not None:
        layout = layout + (distance if regression_run else gaps)
        if w_tilde is not None and not regression_run:
            layout = layout + theorem4
    if not linear:
        layout = layout + theta
    for name, row, note in layout:
        _put(cols, name, vals[row], finite[row], note)
    if not linear:
        _layer_columns(cols, layer_norms, e)
        if not regression_run:
            for name, row, note in margin_theta:
                _put(cols, name, vals[row], finite[row], note)
    return _predictor_history(cols, _true_predictors(B, e, ex0), Bn, bexp, U, meta)


@functools.lru_cache(maxsize=64)
def _kernel_offsets(shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Where each layer starts in ``theta``, and its length at the end (read-only)."""
    from ..models._base import layer_offsets

    sizes = [math.prod(s) for s in shapes]
    out = np.append(layer_offsets(shapes), sum(sizes)).astype(np.int64)
    out.setflags(write=False)
    return out


def _put(cols: _Columns, name: str, values: np.ndarray, finite: bool, note: str | None) -> None:
    """A column (``note``: the overflow advice of a magnitude; None: always finite)."""
    if note is None or finite:
        cols.cols[name] = values
    else:
        cols.add(name, values, note)


def build_history_numpy(
    steps: np.ndarray,
    thetas: np.ndarray,
    model,
    d: int,
    Z: np.ndarray,
    targets: np.ndarray,
    loss: str,
    reference: np.ndarray | None,
    w_tilde: np.ndarray | None,
    meta: dict[str, Any],
    theta_scale: np.ndarray | None = None,
) -> History:
    """Derive every column from the recorded parameters (rows ``theta(t)`` at ``steps``).

    Classification columns: ``step``, ``loss``, ``log_loss``, ``norm`` (``||beta||``),
    ``log_norm``, ``min_margin`` (``min_n y_n x_n.beta``), ``log_min_margin``,
    ``normalized_margin`` (``min margin / ||beta||``; 0 for ``beta = 0``) and, with a
    reference ``w_hat``: ``angle_gap`` (Soudry eq. 3.2), ``direction_distance`` (eq. 3.1),
    ``margin_gap`` (eq. 3.3), ``residual_norm`` (``||beta(t) - w_hat log t||``, eq. 2.3) and,
    when Theorem 4 applies, ``theorem4_residual_norm`` (``||beta(t) - w_hat log t - w_tilde||``;
    ``w_tilde`` (d,), or (K, d) one per row). Regression (squared loss): ``loss``,
    ``log_loss``, ``norm``, ``log_norm``, ``max_abs_residual`` and ``distance_to_reference``.
    Deep models add ``theta_norm``, ``log_theta_norm``, ``layer_norm_1..L`` and
    (classification) ``normalized_margin_theta`` = ``min margin / ||theta||**L``.
    Extended-precision runs are processed in ``np.longdouble`` and stored as float64.

    ``theta_scale``: the true rows are ``2**theta_scale[k] * thetas[k]``. Scale-free columns
    come from the scaled rows; ``log_*`` columns are natural logs, exact at any scale
    (:data:`LOG_FLOOR` where the quantity is 0, or for ``log_min_margin`` <= 0);
    ``log_loss = -m_min + log sum_n exp(-(m_n - m_min))`` is never ``-inf`` while the loss is
    positive and representable. Magnitudes that overflow float64 are left out (see
    :class:`History`).
    """
    from ..models import Linear

    thetas = np.asarray(thetas)
    dt = thetas.dtype
    K = len(thetas)
    linear = isinstance(model, Linear)
    steps = np.asarray(steps, dtype=np.int64)
    e = (
        np.zeros(K, dtype=np.int64)
        if theta_scale is None
        else np.asarray(theta_scale, dtype=np.int64)[:K]
    )
    if linear:
        B = thetas.reshape(K, d)  # the predictor is the parameter vector (long double if so)
    else:
        thetas, e = _unit_rows_if_extreme(thetas, e)
        B = np.asarray(model.predictors(thetas, d), dtype=dt).reshape(K, d)
    # beta_k = 2**bexp[k] * Bn[k], every nonzero row of Bn with max entry in [0.5, 1)
    Bn, bexp = _normalize_rows(B, e * model.depth)
    Zd = np.asarray(Z, dtype=dt)
    out_s = Bn @ Zd.T  # (K, N): margins (or predictions) / 2**bexp
    bnorm_s = norm(Bn, axis=1)
    nonzero = bnorm_s > 0
    U = Bn / np.where(nonzero, bnorm_s, 1)[:, None]
    cols = _Columns(steps)
    cols.cols["step"] = steps
    log_norm = _log_scaled(bnorm_s, bexp)
    B_true = _true_predictors(B, e, e * model.depth)
    if loss == "squared":
        R, rexp = _residuals(out_s, bexp, np.asarray(targets, dtype=dt))
        log_loss = _log_half_sumsq(R, rexp)
        with np.errstate(over="ignore", under="ignore"):
            cols.add("loss", np.exp(log_loss), "read log_loss")
        cols.cols["log_loss"] = log_loss
        cols.add("norm", _ldexp64(bnorm_s, bexp), "read log_norm")
        cols.cols["log_norm"] = log_norm
        cols.add("max_abs_residual", _ldexp64(np.max(np.abs(R), axis=1), rexp), "read log_loss")
        if reference is not None:
            ref = np.asarray(reference, dtype=dt)
            with np.errstate(over="ignore", invalid="ignore"):
                base = B_true if B_true is not None else np.ldexp(Bn, bexp[:, None])
                dist = norm(base - ref[None, :], axis=1)
            cols.add("distance_to_reference", dist, "the iterates overflow float64")
    else:
        lossobj = get_loss(loss)
        s_min = np.asarray(out_s.min(axis=1), dtype=np.float64)
        log_loss = _log_loss_rows(out_s, bexp, lossobj)
        log_min_margin = _log_scaled(s_min, bexp)
        with np.errstate(under="ignore", over="ignore"):
            cols.add("loss", np.exp(log_loss), "read log_loss")  # (0 where it underflows)
        cols.add(
            "log_loss",
            log_loss,
            "log L = -exp(log_min_margin) + log(sum_n exp(-(m_n - m_min))) and the second "
            "term is below log N, so log(-log L) = h['log_min_margin'] to float64 precision",
        )
        cols.add("norm", _ldexp64(bnorm_s, bexp), "read log_norm")
        cols.cols["log_norm"] = log_norm
        cols.add("min_margin", _ldexp64(s_min, bexp), "read log_min_margin")
        cols.cols["log_min_margin"] = log_min_margin
        nm = np.zeros(K)
        nm[nonzero] = np.asarray(s_min[nonzero] / bnorm_s[nonzero], dtype=np.float64)
        cols.cols["normalized_margin"] = nm
        if reference is not None:
            ref = np.asarray(reference, dtype=dt)
            _ref_columns(cols, U, nonzero, ref, Zd)
            logt = np.log(np.asarray(steps, dtype=dt))
            hint = "the iterates grow faster than log t here; read the gap columns"
            with np.errstate(over="ignore", invalid="ignore"):
                base = B_true if B_true is not None else np.ldexp(Bn, bexp[:, None])
                residual = base - logt[:, None] * ref[None, :]
                cols.add("residual_norm", norm(residual, axis=1), hint)
                if w_tilde is not None:  # (d,), or (K, d): one per row
                    r4 = residual - np.atleast_2d(np.asarray(w_tilde, dtype=dt))
                    cols.add("theorem4_residual_norm", norm(r4, axis=1), hint)
    if not linear:
        th = np.asarray(thetas)
        t_norm_s = norm(th, axis=1) if th.shape[1] else np.zeros(K)
        log_theta_norm = _log_scaled(t_norm_s, e)
        cols.add("theta_norm", _ldexp64(t_norm_s, e), "read log_theta_norm")
        cols.cols["log_theta_norm"] = log_theta_norm
        _layer_columns(cols, model.layer_norms_rows(np.asarray(th, np.float64), d), e)
        if loss != "squared":
            # min margin / ||theta||**L, from the scaled rows: log-domain ratio
            # = s_min * 2**(bexp - e L) / ||theta_s||**L: only small exponents meet here
            num = np.asarray(s_min, dtype=np.float64)
            pos = t_norm_s > 0
            log_den = np.full(K, LOG_FLOOR)
            log_den[pos] = (
                model.depth * np.log(np.asarray(t_norm_s[pos], np.float64))
                - (bexp[pos] - e[pos] * model.depth) * _LN2
            )
            cols.cols["normalized_margin_theta"] = _signed_ratio_log(num, log_den)
    return _predictor_history(cols, B_true, Bn, bexp, U, meta)


def _layer_columns(cols: _Columns, layer_norms: np.ndarray, e: np.ndarray) -> None:
    """``layer_norm_l`` (``log_layer_norm_l`` too when it overflows float64) from the scaled
    rows' layer norms (K, L) (``Model.layer_norms_rows``)."""
    layer_norms = np.asarray(layer_norms, dtype=np.float64)
    if layer_norms.size:  # every layer at once when they all fit in float64 (the usual case)
        e = np.asarray(e, dtype=np.int64)
        if e.any():
            with np.errstate(over="ignore"):
                full = np.ldexp(layer_norms.T, e)  # (L, K)
        else:  # (no row rescaled: ldexp by 0 is the identity)
            full = np.ascontiguousarray(layer_norms.T)
        if np.isfinite(full).all():
            for layer in range(len(full)):
                cols.cols[f"layer_norm_{layer + 1}"] = full[layer]
            return
    for layer in range(layer_norms.shape[1]):
        n_s = layer_norms[:, layer]
        name = f"layer_norm_{layer + 1}"
        full = _ldexp64(n_s, e)
        cols.add(name, full, f"read log_{name}")
        if name in cols.overflowed:
            cols.cols[f"log_{name}"] = _log_scaled(n_s, e)


def build_network_history(
    steps: np.ndarray,
    thetas: np.ndarray,
    model,
    X: np.ndarray,
    y: np.ndarray,
    loss: str,
    meta: dict[str, Any],
    theta_scale: np.ndarray | None = None,
) -> History:
    """The history of a network that is not a linear predictor (ReLU, Vardi et al. Section 2):
    the columns of :func:`build_network_history_numpy` (the specification), bit for bit.

    The forward pass is NumPy's (one batched product per layer); the norms, margins,
    log-losses and activity of every row are two compiled passes
    (:mod:`fastbias.kernels._numba_network_history`, the same sums in the same order), which
    keeps the fixed cost of a short run low. Rows far from unit scale, magnitudes that
    overflow float64 and models without ``forward_rows`` go to the NumPy code.
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    K = len(thetas)
    if K == 0 or not hasattr(model, "forward_rows") or thetas.shape[1] == 0:
        return build_network_history_numpy(steps, thetas, model, X, y, loss, meta, theta_scale)
    nnh = _network_kernels()
    thetas = np.ascontiguousarray(thetas)
    if not nnh.rows_in_range(thetas):
        return build_network_history_numpy(steps, thetas, model, X, y, loss, meta, theta_scale)
    L = model.depth
    e = np.zeros(K, np.int64) if theta_scale is None else np.asarray(theta_scale, np.int64)[:K]
    e = np.ascontiguousarray(e)
    weights = model.weight_matrices_rows(thetas)
    out_s, hidden = model.forward_rows(thetas, X, weights)
    y = np.asarray(y, dtype=np.float64)
    code = 2 if loss == "squared" else get_loss(loss).code
    offsets = _kernel_offsets(tuple(model.shapes(X.shape[1])))
    ok, vals, layer_norms, iterates = nnh.network_rows(
        thetas, e, np.ascontiguousarray(out_s), y, code, L, offsets
    )
    layers = []
    for layer in range(len(hidden)):
        done = nnh.hidden_layer_rows(weights[layer], hidden[layer], e)
        ok = ok and done[0]
        layers.append(done[1:])
    if not ok:  # something overflows float64: the NumPy code says where
        return build_network_history_numpy(steps, thetas, model, X, y, loss, meta, theta_scale)
    steps = np.asarray(steps)
    cols = _Columns(steps)
    cols.cols["step"] = steps
    c = cols.cols
    oexp = e * L
    if code == 2:
        R, rexp = _residuals(out_s, oexp, y)
        log_loss = _log_half_sumsq(R, rexp)
        with np.errstate(over="ignore", under="ignore"):
            cols.add("loss", np.exp(log_loss), "read log_loss")
        c["log_loss"] = log_loss
    else:
        if code == 0:
            c["loss"] = vals[nnh.V_LOSS]
            c["log_loss"] = vals[nnh.V_LOG_LOSS]
        else:
            log_loss = _log_loss_rows(y[None, :] * out_s, oexp, get_loss(loss))
            with np.errstate(under="ignore", over="ignore"):
                cols.add("loss", np.exp(log_loss), "read log_loss")
            cols.add("log_loss", log_loss, "log(-log L) = h['log_min_margin'] to float64 precision")
        c["min_margin"] = vals[nnh.V_MIN_MARGIN]
        c["log_min_margin"] = vals[nnh.V_LOG_MIN_MARGIN]
        c["normalized_margin_theta"] = vals[nnh.V_NORMALIZED_MARGIN_THETA]
    c["theta_norm"] = vals[nnh.V_THETA_NORM]
    c["log_theta_norm"] = vals[nnh.V_LOG_THETA_NORM]
    for layer in range(len(layer_norms)):
        c[f"layer_norm_{layer + 1}"] = layer_norms[layer]
    arrays: dict[str, np.ndarray] = {}
    for layer, (norms, active, fraction) in enumerate(layers):
        c[f"active_fraction_{layer + 1}"] = fraction
        arrays[f"active_{layer + 1}"] = active
        arrays[f"neuron_norms_{layer + 1}"] = norms
    return History(
        c, iterates, meta, arrays, overflowed=cols.overflowed, scaled_iterates=thetas,
        iterate_scale=e,
    )  # fmt: skip


_NETWORK_KERNELS = []


def _network_kernels():
    """:mod:`fastbias.kernels._numba_network_history` (imported on first use)."""
    if not _NETWORK_KERNELS:
        from ..kernels import _numba_network_history

        _NETWORK_KERNELS.append(_numba_network_history)
    return _NETWORK_KERNELS[0]


def build_network_history_numpy(
    steps: np.ndarray,
    thetas: np.ndarray,
    model,
    X: np.ndarray,
    y: np.ndarray,
    loss: str,
    meta: dict[str, Any],
    theta_scale: np.ndarray | None = None,
) -> History:
    """The history of a network that is not a linear predictor (ReLU, Vardi et al. Section 2).

    Columns: ``step``, ``loss``, ``log_loss``, ``theta_norm``, ``log_theta_norm``,
    ``layer_norm_1..L`` and, for classification, ``min_margin``, ``log_min_margin`` and
    ``normalized_margin_theta`` (``min_n y_n Phi(theta; x_n) / ||theta||**L``), plus
    ``active_fraction_l``: the fraction of (sample, neuron) pairs of hidden layer l with a
    positive input. ``iterates`` holds the parameter rows ``theta(t)``; ``arrays`` holds, per
    checkpoint, ``neuron_norms_l`` (K, width: incoming weight norm of every neuron of hidden
    layer l; ``log_neuron_norms_l`` instead once they overflow float64) and ``active_l``
    (K, N, width: which neurons are active on which inputs). Past float64 the same rules as
    :func:`build_history` apply (``Phi`` is homogeneous of degree L in ``theta``).
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    K, L = len(thetas), model.depth
    e = np.zeros(K, np.int64) if theta_scale is None else np.asarray(theta_scale, np.int64)[:K]
    thetas, e = _unit_rows_if_extreme(thetas, e)
    steps = np.asarray(steps)
    cols = _Columns(steps)
    cols.cols["step"] = steps
    batched = hasattr(model, "forward_rows")
    if batched:  # one forward pass for every row (the same products as row by row)
        weights = model.weight_matrices_rows(thetas)
        out_s, hidden = model.forward_rows(thetas, X, weights)
    else:
        out_s = np.array([model.forward(th, X) for th in thetas]).reshape(K, -1)
        hidden = None
    oexp = e * L
    t_norm_s = norm(thetas, axis=1) if thetas.shape[1] else np.zeros(K)
    log_theta_norm = _log_scaled(t_norm_s, e)
    y = np.asarray(y, dtype=np.float64)
    if loss == "squared":
        R, rexp = _residuals(out_s, oexp, y)
        log_loss = _log_half_sumsq(R, rexp)
        with np.errstate(over="ignore", under="ignore"):
            cols.add("loss", np.exp(log_loss), "read log_loss")
        cols.cols["log_loss"] = log_loss
    else:
        lossobj = get_loss(loss)
        m_s = y[None, :] * out_s
        s_min = m_s.min(axis=1)
        log_loss = _log_loss_rows(m_s, oexp, lossobj)
        with np.errstate(under="ignore", over="ignore"):
            cols.add("loss", np.exp(log_loss), "read log_loss")
        cols.add("log_loss", log_loss, "log(-log L) = h['log_min_margin'] to float64 precision")
        cols.add("min_margin", _ldexp64(s_min, oexp), "read log_min_margin")
        cols.cols["log_min_margin"] = _log_scaled(s_min, oexp)
        log_den = np.full(K, LOG_FLOOR)
        pos = t_norm_s > 0
        log_den[pos] = L * np.log(t_norm_s[pos])  # the 2**(e L) of both sides cancels
        cols.cols["normalized_margin_theta"] = _signed_ratio_log(s_min, log_den)
    cols.add("theta_norm", _ldexp64(t_norm_s, e), "read log_theta_norm")
    cols.cols["log_theta_norm"] = log_theta_norm
    _layer_columns(cols, model.layer_norms_rows(thetas, X.shape[1]), e)
    arrays: dict[str, np.ndarray] = {}
    if batched:
        active = [a > 0 for a in hidden]
        neuron_norms = model.neuron_norms_rows(thetas, weights)
    elif K:
        per_row = [model.activation_patterns(th, X) for th in thetas]
        active = [np.array([a[i] for a in per_row]) for i in range(len(per_row[0]))]
        norms_rows = [model.neuron_norms(th) for th in thetas]
        neuron_norms = [np.array([n[i] for n in norms_rows]) for i in range(len(active))]
    else:
        active = neuron_norms = []
    for layer in range(len(active) if K else 0):
        act = active[layer]
        cols.cols[f"active_fraction_{layer + 1}"] = np.mean(act, axis=(1, 2))
        arrays[f"active_{layer + 1}"] = act
        n_s = neuron_norms[layer]
        full = _ldexp64(n_s, e[:, None])
        if np.all(np.isfinite(full)):
            arrays[f"neuron_norms_{layer + 1}"] = full
        else:
            arrays[f"log_neuron_norms_{layer + 1}"] = _log_scaled(
                n_s, np.broadcast_to(e[:, None], n_s.shape)
            )
    full = _ldexp64(thetas, e[:, None])
    iterates = full if np.all(np.isfinite(full)) else None
    if iterates is None:
        cols.overflowed["iterates"] = _iterate_note(cols, full, "parameters", "log_theta_norm")
    return History(
        cols.cols,
        iterates,
        meta,
        arrays,
        overflowed=cols.overflowed,
        scaled_iterates=thetas,
        iterate_scale=e,
    )


# ---- the result of a run ---------------------------------------------------------------------


@dataclass(eq=False)
class Run:
    """The result of :func:`fastbias.train`.

    Attributes
    ----------
    coef : ndarray
        The final predictor ``beta = P(theta(T))`` (for the linear model, ``w(T)``; None for
        a ReLU network). Reading it raises ``OverflowError`` when ``beta`` does not fit in
        float64 (runs past ``||beta|| = 1.8e308``): use ``direction`` and ``log_coef_norm``
        (``beta = exp(log_coef_norm) * direction``).
    direction : ndarray or None
        ``beta / ||beta||``, always finite (zero when ``beta = 0``; None for ReLU networks).
    log_coef_norm : float or None
        ``log ||beta||`` (natural log; :data:`LOG_FLOOR` for ``beta = 0``), exact at any
        scale.
    params : list of ndarray
        The final parameters, one array per layer (``[w]`` for the linear model); raises
        ``OverflowError`` past float64 (use ``scaled_params`` and ``theta_scale``).
    model : Model
        The parameterization that was trained.
    history : History
        Checkpointed diagnostics.
    status : str
        ``"completed"``, ``"interrupted"`` (Ctrl-C: the steps finished so far are kept), or
        another truthful word on how the run ended (see :func:`fastbias.train`).
    steps_done : int
        Number of GD steps taken.
    reference : object or None
        The max-margin solution (or user direction) the gaps are measured against.
    theta_scale, scaled_params :
        ``params = 2**theta_scale * scaled_params`` exactly; deep models rescale by powers of
        two so that runs whose parameters outgrow float64 keep their direction in
        ``scaled_params``.
    """

    coef: np.ndarray | None
    params: list[np.ndarray]
    history: History
    status: str
    steps_done: int
    settings: dict[str, Any] = field(default_factory=dict)
    reference: Any = None
    elapsed: float = 0.0
    model: Any = None
    theta_scale: int = 0
    scaled_params: list[np.ndarray] | None = None
    direction: np.ndarray | None = None
    log_coef_norm: float | None = None

    def __post_init__(self) -> None:
        self._coef_note = self._params_note = ""
        if self.scaled_params is None and self._params is not None:
            self.scaled_params = [np.asarray(p) for p in self._params]
        params_ok = self._params is None or all(
            np.isfinite(np.asarray(p, dtype=np.float64)).all() for p in self._params
        )
        if not params_ok:
            self._params_note = (
                f"the parameters overflow float64 (theta_scale = {self.theta_scale}); read "
                "run.scaled_params and run.theta_scale: params = 2**theta_scale * scaled_params"
            )
        if self._coef is None and self.direction is None:
            linear = getattr(self.model, "linear_predictor", True)
            if not linear or self.model is None or self.scaled_params is None:
                return
            beta_s = np.asarray(self.model.predictor(self.scaled_params)).ravel()
            self._set_direction(beta_s, self.theta_scale * self.model.depth)
            return
        if self._coef is None:
            return
        coef64 = np.asarray(self._coef, dtype=np.float64)
        # float64 (also a view with an equal dtype object: np.asarray returns another view of
        # a compiled kernel's result): one reduction checks and scales
        if isinstance(self._coef, np.ndarray) and self._coef.dtype == np.float64 and coef64.size:
            top = float(np.abs(coef64).max())
            if math.isfinite(top):
                if self.direction is None:
                    self._set_direction(coef64.ravel(), 0, top)
                return
        elif np.isfinite(coef64).all():
            if self.direction is None:
                self._set_direction(np.asarray(self._coef).ravel(), 0)
            return
        # beta overflows: the direction and log-norm from the scaled parameters
        if self.direction is None and self.scaled_params is not None and self.model is not None:
            beta_s = np.asarray(self.model.predictor(self.scaled_params)).ravel()
            self._set_direction(beta_s, self.theta_scale * self.model.depth)
        self._coef_note = (
            "run.coef (the predictor beta) overflows float64 "
            f"(log ||beta|| = {self.log_coef_norm:.6g}); read run.direction (beta / ||beta||, "
            "finite) and run.log_coef_norm: beta = exp(log_coef_norm) * direction"
        )

    def _set_direction(self, beta_s: np.ndarray, exponent: int, top: float | None = None) -> None:
        """``direction`` and ``log_coef_norm`` of ``2**exponent beta_s`` (``top``: the
        largest ``|beta_s|`` when the caller has it)."""
        beta_s = np.asarray(beta_s)
        if beta_s.dtype == np.float64 and beta_s.size:
            # _normalize_rows of the one row, then its norm and log norm, on scalars: the same
            # operations as below, bit for bit (frexp and the power-of-two scaling are exact)
            if top is None:
                top = float(np.abs(beta_s).max())
            ex = math.frexp(top)[1]
            bn1 = np.ldexp(beta_s, -ex)
            # diagnostics.norm(bn1), its scale max|bn1| known: top / 2**ex (exact)
            scale = math.ldexp(top, -ex)
            u = bn1 / (scale if scale > 0 else 1.0)
            n = float(np.sqrt((u * u).sum()) * scale)
            self.direction = bn1 / n if n > 0 else np.zeros(bn1.shape[0])
            self.log_coef_norm = (
                float(np.log(n) + float(exponent + ex) * _LN2) if n > 0 else LOG_FLOOR
            )
            return
        bn, ex = _normalize_rows(beta_s[None, :], np.array([exponent]))
        n = float(norm(np.asarray(bn[0], dtype=np.float64)))
        self.direction = np.asarray(bn[0], dtype=np.float64) / n if n > 0 else np.zeros(bn.shape[1])
        self.log_coef_norm = float(_log_scaled(np.array([n]), ex)[0])

    def rates(self, t_min: int | None = None, t_max: int | None = None):
        """Fitted convergence rates (:func:`fastbias.diagnostics.fit_rates`)."""
        return fit_rates(self.history, t_min=t_min, t_max=t_max)

    # -- tidy views (pandas / xarray are optional extras, imported on use) --------------

    def to_pandas(self, iterates: bool = False, settings: bool = True):
        """The history as a DataFrame (:meth:`History.to_pandas`), one row per checkpoint,
        led by the run's scalar settings (``model``, ``loss_function`` (the setting ``loss``;
        ``loss`` is the loss value), ``lr``, ``seed``, ``init_scale``, ...) and ``status`` as
        constant columns when ``settings`` is true.

        Raises
        ------
        ImportError
            Without pandas (``pip install "fastbias[pandas]"``).
        """
        from .._tidy import run_frame

        return run_frame(self, iterates=iterates, settings=settings)

    def to_xarray(self):
        """The history as an xarray Dataset (:meth:`History.to_xarray`) with the run's
        settings and status as attributes.

        Raises
        ------
        ImportError
            Without xarray (``pip install "fastbias[xarray]"``).
        """
        from .._tidy import history_dataset, scalar_settings

        return history_dataset(
            self.history, {**scalar_settings(self.settings), "status": self.status}
        )

    def __repr__(self) -> str:
        if self._coef_note:
            beta = f"direction={self.direction!r}, log_coef_norm={self.log_coef_norm:.6g}"
        else:
            beta = f"coef={self._coef!r}"
        return (
            f"Run(model={self.settings.get('model')!r}, loss={self.settings.get('loss')!r}, "
            f"steps_done={self.steps_done}, status={self.status!r}, {beta})"
        )


def _get_coef(self: Run) -> np.ndarray | None:
    if self._coef_note:
        raise OverflowError(self._coef_note)
    return self._coef


def _set_coef(self: Run, value: Any) -> None:
    self._coef = value


def _get_params(self: Run) -> list[np.ndarray]:
    if self._params_note:
        raise OverflowError(self._params_note)
    return self._params


def _set_params(self: Run, value: Any) -> None:
    self._params = value


# the dataclass fields ``coef`` and ``params`` are read through these (set by __init__)
Run.coef = property(_get_coef, _set_coef, doc="The final predictor (see the class doc).")  # type: ignore[assignment]
Run.params = property(_get_params, _set_params, doc="The final layers (see the class doc).")  # type: ignore[assignment]
