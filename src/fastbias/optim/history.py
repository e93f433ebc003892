"""What a run records: log-spaced checkpoints of the iterate, and diagnostics derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..diagnostics import angle_gap, direction_distance, fit_rates, margin_gap, norm
from ..losses import get_loss, logsumexp

__all__ = ["checkpoint_steps", "History", "Run", "build_history", "build_network_history"]


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
    predictors ``beta(t)`` (``w(t)`` for the linear model) at ``h["step"]``; ``h.meta`` holds
    the run's settings. Write it with
    :meth:`to_csv`; print it with :meth:`table`.
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        iterates: np.ndarray,
        meta: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
    ):
        self.columns = columns
        self.iterates = iterates
        self.meta = meta
        # per-checkpoint arrays that are not one number per row (networks: per-neuron norms
        # and activation patterns), indexed by checkpoint first
        self.arrays = arrays or {}

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
        """Write the columns (one row per checkpoint) and the iterates ``w_0 .. w_{d-1}``
        (through pandas when it is installed; the same file without it)."""
        from .._tidy import write_history_csv

        return write_history_csv(self, path)

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

    # -- tidy views (pandas / xarray are optional extras, imported on use) --------------

    def to_pandas(self, iterates: bool = False):
        """A pandas DataFrame with one row per checkpoint and one column per history column
        (``step``, ``loss``, ``log_loss``, ``norm``, ..., as listed in :func:`build_history`).

        Parameters
        ----------
        iterates : bool
            Also add the iterate entries as columns ``w_0 .. w_{d-1}`` (as in :meth:`to_csv`).

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

    Classification columns: ``step``, ``loss``, ``log_loss``, ``norm`` (``||beta||``),
    ``min_margin`` (``min_n y_n x_n.beta``), ``normalized_margin`` (``min margin / ||beta||``)
    and, with a reference ``w_hat``: ``angle_gap`` (Soudry eq. 3.2), ``direction_distance``
    (eq. 3.1), ``margin_gap`` (eq. 3.3), ``residual_norm`` (``||beta(t) - w_hat log t||``, eq.
    2.3) and, when Theorem 4 applies, ``theorem4_residual_norm``. Regression (squared loss):
    ``loss``, ``log_loss``, ``norm``, ``max_abs_residual`` and ``distance_to_reference``.
    Deep models add ``theta_norm``, ``layer_norm_1..L`` and (classification)
    ``normalized_margin_theta`` = ``min margin / ||theta||**L``. Extended-precision runs are
    processed in ``np.longdouble`` and stored as float64.

    ``theta_scale`` (deep models): the true rows are ``2**theta_scale[k] * thetas[k]``; then
    the scale-free columns (gaps, normalized margins) come from the scaled rows, so they stay
    exact where ``||theta||`` or the margins overflow, and ``log_norm``, ``log_theta_norm``
    and ``log_min_margin`` (natural logs; ``log(-log L)`` once the loss underflows) stay
    finite.
    """
    thetas = np.asarray(thetas)
    dt = thetas.dtype
    from ..models import Linear

    K = len(thetas)
    if theta_scale is None or isinstance(model, Linear):
        theta_scale = np.zeros(K, dtype=np.int64)
    theta_scale = np.asarray(theta_scale, dtype=np.int64)[:K]
    if isinstance(model, Linear):
        B = thetas  # the predictor is the parameter vector (kept in long double if extended)
    else:
        B = np.array([model.predictor(model.unflatten(th, d)) for th in thetas], dtype=dt)
    B = B.reshape(K, d)  # scaled predictors: beta = 2**(L e) B
    bexp = theta_scale * (model.depth if not isinstance(model, Linear) else 1)
    Zd = np.asarray(Z, dtype=dt)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled_out = B @ Zd.T  # (K, N)
        outputs = np.ldexp(scaled_out, bexp[:, None])  # margins, or regression predictions
        b_norm_s = norm(B, axis=1)
        b_norm = np.ldexp(b_norm_s, bexp)
    B_true = np.ldexp(B, bexp[:, None]) if np.any(bexp) else B
    cols: dict[str, np.ndarray] = {"step": np.asarray(steps, dtype=np.int64)}
    if loss == "squared":
        resid = np.asarray(outputs - np.asarray(targets, dtype=dt)[None, :], dtype=np.float64)
        lvals = 0.5 * np.sum(resid**2, axis=1)
        cols["loss"] = lvals
        with np.errstate(divide="ignore"):
            cols["log_loss"] = np.log(lvals)
        cols["norm"] = np.asarray(b_norm, dtype=np.float64)
        cols["max_abs_residual"] = np.abs(resid).max(axis=1)
        if reference is not None:
            diff = B - np.asarray(reference, dtype=dt)[None, :]
            cols["distance_to_reference"] = np.asarray(norm(diff, axis=1), dtype=np.float64)
    else:
        lossobj = get_loss(loss)
        log_loss = np.empty(K)
        for k in range(K):
            m_s = np.asarray(scaled_out[k], dtype=np.float64)
            s_min = float(m_s.min())
            if bexp[k] != 0 and s_min > 0 and np.ldexp(s_min, bexp[k]) > 700.0:
                # exp and logistic agree here; shift by the min margin, which may overflow
                with np.errstate(over="ignore"):
                    shifted = np.ldexp(m_s - s_min, bexp[k])
                log_loss[k] = -np.ldexp(s_min, bexp[k]) + logsumexp(-shifted)
            else:
                log_loss[k] = logsumexp(lossobj.log_value(np.asarray(outputs[k], np.float64)))
        min_margin = outputs.min(axis=1)
        cols["loss"] = np.exp(log_loss)
        cols["log_loss"] = log_loss
        cols["norm"] = np.asarray(b_norm, dtype=np.float64)
        cols["min_margin"] = np.asarray(min_margin, dtype=np.float64)
        if not isinstance(model, Linear):
            s_min = np.asarray(scaled_out.min(axis=1), dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                cols["log_min_margin"] = np.where(
                    s_min > 0, np.log(np.where(s_min > 0, s_min, 1.0)) + bexp * np.log(2.0), np.nan
                )
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["normalized_margin"] = np.asarray(
                scaled_out.min(axis=1) / np.where(b_norm_s > 0, b_norm_s, np.nan),
                dtype=np.float64,
            )
        if reference is not None:
            ref = np.asarray(reference, dtype=dt)
            nonzero = b_norm > 0
            for name, fn in (("angle_gap", angle_gap), ("direction_distance", direction_distance)):
                col = np.full(len(B), np.nan)
                if nonzero.any():
                    col[nonzero] = np.asarray(fn(B[nonzero], ref), dtype=np.float64)
                cols[name] = col
            col = np.full(len(B), np.nan)
            if nonzero.any():
                col[nonzero] = np.asarray(margin_gap(B[nonzero], ref, Zd), dtype=np.float64)
            cols["margin_gap"] = col
            logt = np.log(np.asarray(steps, dtype=dt))
            with np.errstate(invalid="ignore"):
                residual = B_true - logt[:, None] * ref[None, :]
            cols["residual_norm"] = np.asarray(norm(residual, axis=1), dtype=np.float64)
            if w_tilde is not None:
                r4 = residual - np.asarray(w_tilde, dtype=dt)[None, :]
                cols["theorem4_residual_norm"] = np.asarray(norm(r4, axis=1), dtype=np.float64)
    if not isinstance(model, Linear):
        th64 = np.asarray(thetas, dtype=np.float64)
        t_norm_s = np.linalg.norm(th64, axis=1)
        with np.errstate(over="ignore", divide="ignore"):
            cols["theta_norm"] = np.ldexp(t_norm_s, theta_scale)
            cols["log_theta_norm"] = np.log(t_norm_s) + theta_scale * np.log(2.0)
            cols["log_norm"] = np.asarray(np.log(b_norm_s), np.float64) + bexp * np.log(2.0)
        for layer, arr in enumerate(zip(*[model.unflatten(th, d) for th in th64], strict=True)):
            with np.errstate(over="ignore"):
                cols[f"layer_norm_{layer + 1}"] = np.ldexp(
                    np.array([np.linalg.norm(np.ravel(a)) for a in arr]), theta_scale
                )
        if loss != "squared":
            with np.errstate(invalid="ignore", divide="ignore"):
                cols["normalized_margin_theta"] = (
                    np.asarray(scaled_out.min(axis=1), dtype=np.float64)
                    / np.where(t_norm_s > 0, t_norm_s, np.nan) ** model.depth
                )
    return History(cols, B_true, meta)


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
    """The history of a network that is not a linear predictor (ReLU, Vardi et al. Section 2).

    Columns: ``step``, ``loss``, ``log_loss``, ``theta_norm``, ``log_theta_norm``,
    ``layer_norm_1..L`` and, for classification, ``min_margin``, ``log_min_margin`` and
    ``normalized_margin_theta`` (``min_n y_n Phi(theta; x_n) / ||theta||**L``), plus
    ``active_fraction_l``: the fraction of (sample, neuron) pairs of hidden layer l with a
    positive input. ``iterates`` holds the parameter rows ``theta(t)``; ``arrays`` holds, per
    checkpoint, ``neuron_norms_l`` (K, width: incoming weight norm of every neuron of hidden
    layer l) and ``active_l`` (K, N, width: which neurons are active on which inputs).
    """
    thetas = np.asarray(thetas, dtype=np.float64)
    K, L = len(thetas), model.depth
    e = np.zeros(K, np.int64) if theta_scale is None else np.asarray(theta_scale)[:K]
    cols: dict[str, np.ndarray] = {"step": np.asarray(steps, dtype=np.int64)}
    out_s = np.array([model.forward(th, X) for th in thetas]).reshape(K, -1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        outputs = np.ldexp(out_s, (e * L)[:, None])
        t_norm_s = np.linalg.norm(thetas, axis=1)
        if loss == "squared":
            lvals = 0.5 * np.sum((outputs - y[None, :]) ** 2, axis=1)
            cols["loss"], cols["log_loss"] = lvals, np.log(lvals)
        else:
            lossobj = get_loss(loss)
            m_s = y[None, :] * out_s
            log_loss = np.array([logsumexp(lossobj.log_value(m)) for m in y[None, :] * outputs])
            cols["loss"], cols["log_loss"] = np.exp(log_loss), log_loss
            s_min = m_s.min(axis=1)
            cols["min_margin"] = np.ldexp(s_min, e * L)
            cols["log_min_margin"] = np.where(
                s_min > 0, np.log(np.where(s_min > 0, s_min, 1.0)) + e * L * np.log(2.0), np.nan
            )
            cols["normalized_margin_theta"] = s_min / np.where(t_norm_s > 0, t_norm_s, np.nan) ** L
        cols["theta_norm"] = np.ldexp(t_norm_s, e)
        cols["log_theta_norm"] = np.log(t_norm_s) + e * np.log(2.0)
        rows = [model.unflatten(th, X.shape[1]) for th in thetas]
        for layer, arr in enumerate(zip(*rows, strict=True)):
            cols[f"layer_norm_{layer + 1}"] = np.ldexp(
                np.array([np.linalg.norm(np.ravel(a)) for a in arr]), e
            )
        actives = [model.activation_patterns(th, X) for th in thetas]
        arrays: dict[str, np.ndarray] = {}
        for layer in range(len(actives[0]) if actives else 0):
            cols[f"active_fraction_{layer + 1}"] = np.array([np.mean(a[layer]) for a in actives])
            arrays[f"active_{layer + 1}"] = np.array([a[layer] for a in actives])
            arrays[f"neuron_norms_{layer + 1}"] = np.array(
                [
                    np.ldexp(model.neuron_norms(th)[layer], ek)
                    for th, ek in zip(thetas, e, strict=True)
                ]
            )
        iterates = np.ldexp(thetas, e[:, None])
    return History(cols, iterates, meta, arrays)


@dataclass
class Run:
    """The result of :func:`fastbias.train`.

    Attributes
    ----------
    coef : ndarray
        The final predictor ``beta = P(theta(T))`` (for the linear model, ``w(T)``).
    params : list of ndarray
        The final parameters, one array per layer (``[w]`` for the linear model).
    model : Model
        The parameterization that was trained.
    history : History
        Checkpointed diagnostics.
    status : str
        ``"completed"`` or ``"interrupted"`` (Ctrl-C: the steps finished so far are kept).
    steps_done : int
        Number of GD steps taken.
    reference : object or None
        The max-margin solution (or user direction) the gaps are measured against.
    theta_scale, scaled_params :
        ``params = 2**theta_scale * scaled_params`` exactly; deep models rescale by powers of
        two so that runs whose parameters outgrow float64 (``params`` then holds inf) keep
        their direction in ``scaled_params``.
    """

    coef: np.ndarray
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
        return (
            f"Run(model={self.settings.get('model')!r}, loss={self.settings.get('loss')!r}, "
            f"steps_done={self.steps_done}, status={self.status!r}, coef={self.coef!r})"
        )
