"""A run's result from its spec and its final state: the :class:`Run` (with its
:class:`History`), a gradient-flow run (:class:`FlowHistory`) or a :class:`MulticlassRun`.

The history is derived from the recorded parameter rows only (``state.rec``, at
``spec.schedule``), so a resumed run and an uninterrupted one report the same rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._blas import one_blas_thread
from .._warn import user_stacklevel
from ..diagnostics import norm as vector_norm
from ..models import FullyConnected, Linear
from ._outcome import frozen_status, warn_if_not_separable
from .history import History, Run, build_history, build_network_history
from .planner import RunState, log_t_of_s
from .spec import FLOW, RunSpec, flow_scaling

__all__ = ["finish", "FlowHistory", "MulticlassRun", "multiclass_log_loss"]


def finish(spec: RunSpec, state: RunState, status: str) -> Run | MulticlassRun:
    """The result of ``spec`` after ``state.done`` steps (``status``: how the run ended).

    The history's products run on one BLAS thread unless they are large (``_blas``): idle
    OpenBLAS threads spin after a threaded product and slowed the next run's kernel threads.
    """
    size = spec.N * spec.d
    with one_blas_thread(size, float(size) * (state.k_rec + 1)):
        if spec.task == "multiclass":
            return _multiclass_run(spec, state, status)
        if spec.optimizer == FLOW:
            return _flow_run(spec, state, status)
        return _gd_run(spec, state, status)


# ---- GD and the other optimizers ---------------------------------------------------------------


def _gd_run(spec: RunSpec, state: RunState, status: str) -> Run:
    mdl, theta, done, k_rec = spec.model, state.theta, state.done, state.k_rec
    d = spec.d
    rec_steps = spec.schedule[:k_rec]
    rec_theta = state.rec[:k_rec]
    rec_scale = state.rec_scale[:k_rec]
    if done > 0 and (k_rec == 0 or rec_steps[-1] != done):
        rec_steps = np.append(rec_steps, done)
        rec_theta = np.vstack([rec_theta, theta[None, :]])
        rec_scale = np.append(rec_scale, state.scale[0])
    settings = spec.settings
    meta = dict(settings)
    if spec.reference_vec is not None:
        meta["reference_norm"] = float(vector_norm(spec.reference_vec))
    e = int(state.scale[0])
    if not spec.linear_predictor:
        history = build_network_history(
            rec_steps, rec_theta, mdl, spec.X, spec.y, spec.loss, meta, theta_scale=rec_scale
        )
        scaled = [np.array(p, dtype=np.float64) for p in mdl.unflatten(theta, d)]
        with np.errstate(over="ignore"):
            params = [np.ldexp(p, e) for p in scaled] if e else scaled
        coef = None
    else:
        history = build_history(
            rec_steps, rec_theta, mdl, d, spec.Z, spec.targets, spec.loss, spec.reference_vec,
            spec.w_tilde, meta, theta_scale=rec_scale,
        )  # fmt: skip
        status = _frozen(status, spec, rec_steps, rec_theta, rec_scale, history)
        if (
            spec.loss != "squared"
            and not isinstance(mdl, (Linear, FullyConnected))
            and "min_margin" in history
            and history["min_margin"][-1] <= 0  # (else warn_if_not_separable returns at once)
        ):
            # (Linear and FullyConnected learn it at the start, from the reference)
            warn_if_not_separable(spec.X, spec.y, history, key=spec.data_key)
        scaled = [
            np.array(p, dtype=np.float64) if spec.precision == "float64" else p.copy()
            for p in mdl.unflatten(theta, d)
        ]
        with np.errstate(over="ignore"):
            params = [np.ldexp(p, e) for p in scaled] if e else scaled
            # (float64: from the flat theta, whose layers scaled copies, where the model can)
            coef = mdl._predictor_of_theta(theta, d) if theta.dtype == np.float64 else None
            if coef is None:
                coef = mdl.predictor(scaled)
            if e:
                coef = np.ldexp(coef, e * mdl.depth)
    return Run(
        coef=coef,
        params=params,
        history=history,
        status=status,
        steps_done=done,
        settings=settings,
        reference=spec.reference if spec.linear_predictor else None,
        elapsed=state.elapsed,
        model=mdl,
        theta_scale=e,
        scaled_params=scaled,
    )


def _frozen(status, spec, rec_steps, rec_theta, rec_scale, history) -> str:
    """A completed margin-loss run whose iterate stopped moving says so (and warns)."""
    if status != "completed" or spec.loss == "squared":
        return status
    log_loss = history.columns.get("log_loss")
    end = None if log_loss is None else float(log_loss[-1])
    if log_loss is None:
        end = -np.inf  # -log L overflows float64: the loss underflowed long ago
    frozen = frozen_status(rec_steps, rec_theta, rec_scale, end)
    if frozen is None:
        return status
    warnings.warn(
        f"the iterate stopped moving (identical at steps {int(rec_steps[-2])} and "
        f"{int(rec_steps[-1])}): {frozen}. exp(-margin) underflows float64, so the steps of "
        f"lr={spec.lr:g} are exactly zero; step_rule='normalized' or 'loss-scaled' keeps the "
        "direction moving.",
        stacklevel=user_stacklevel(),
    )
    return frozen


# ---- gradient flow -----------------------------------------------------------------------------


class FlowHistory(History):
    """A :class:`History` whose ``"step"`` column holds the flow time ``t`` (float64).

    ``h["step"]`` is ``t`` and ``h["log_time"]`` is ``log t``, exact for every horizon; when
    ``t`` passes 1.8e308 (``log_t_max`` beyond 709.78) ``step`` is not a column (reading it
    raises OverflowError pointing to ``log_time``).
    """

    def _fmt(self, name: str, v, width: int) -> str:
        return f"{float(v):>{width}.5g}"


def _flow_run(spec: RunSpec, state: RunState, status: str) -> Run:
    from ..kernels import _numba_flow as nf
    from ..models import Network

    mdl, d = spec.model, spec.d
    st = state.kernel_state["state"]
    _, a_exp, lshift = flow_scaling(spec.X, mdl.depth)
    log_times, times = spec.schedule, spec.schedule_t
    rec_s = np.logaddexp(0.0, log_times + lshift)
    k_rec = int(st[nf.ST_KREC])
    s_final = float(st[nf.ST_S])
    theta, rec_theta = state.theta, state.rec
    if a_exp:  # integrated as theta' = 2**a theta (spec.flow_scaling)
        theta, rec_theta = np.ldexp(theta, -a_exp), np.ldexp(rec_theta, -a_exp)

    def t_at(s: float) -> float:  # the caller's time t at the integrator's s = log(1 + t')
        with np.errstate(over="ignore"):
            return float(np.exp(log_t_at(s))) if lshift else float(np.expm1(s))

    def log_t_at(s: float) -> float:
        return float(log_t_of_s(s)) - lshift

    if status == "converged":
        rec_theta[k_rec:] = theta[None, :]
        k_rec = rec_s.size
        rec_log_t, rec_t = log_times, times
    else:
        rec_log_t, rec_t = log_times[:k_rec], times[:k_rec]
        rec_theta = rec_theta[:k_rec]
        if k_rec == 0 or rec_s[k_rec - 1] != s_final:  # stopped early: add the last point
            rec_log_t = np.append(rec_log_t, log_t_at(s_final) if s_final > 0 else -np.inf)
            rec_t = np.append(rec_t, t_at(s_final))
            rec_theta = np.vstack([rec_theta, theta[None, :]])
    settings = spec.settings
    settings.update(
        {
            "accepted_steps": int(st[nf.ST_ACC]),
            "rejected_steps": int(st[nf.ST_REJ]),
            "gradient_evaluations": int(st[nf.ST_EVAL]),
            "t_final": t_at(s_final),
            "log_t_final": log_t_at(s_final) if s_final > 0 else -np.inf,
        }
    )
    meta = dict(settings)
    if spec.reference_vec is not None:
        meta["reference_norm"] = float(vector_norm(spec.reference_vec))
    network = isinstance(mdl, Network)
    if network:
        base = build_network_history(
            np.ones(len(rec_t), dtype=np.int64), rec_theta, mdl, spec.X, spec.y, spec.loss, meta
        )
        cols = {"step": np.asarray(rec_t, dtype=np.float64), "log_time": rec_log_t}
        cols.update({k: v for k, v in base.columns.items() if k != "step"})
        history = _times_past_float64(base.with_columns(cols, FlowHistory))
    else:
        history = _flow_history(
            rec_t, rec_log_t, rec_theta, mdl, d, spec.Z, spec.targets, spec.loss,
            spec.reference_vec, spec.w_tilde, meta,
        )  # fmt: skip
    params = [np.array(p, dtype=np.float64) for p in mdl.unflatten(theta, d)]
    return Run(
        coef=None if network and not mdl.linear_predictor else mdl.predictor(params),
        params=params,
        history=history,
        status=status,
        steps_done=int(st[nf.ST_ACC]),
        settings=settings,
        reference=spec.reference,
        elapsed=state.elapsed,
        model=mdl,
    )


def _flow_history(
    t, log_t, thetas, mdl, d, Z, targets, loss, ref_vec, w_tilde, meta
) -> FlowHistory:
    """``build_history`` at the recorded times, with ``step`` = t and the residuals at log t.

    ``build_history`` stores ``step`` as int64 and takes ``log(step)`` for the residual
    columns; the flow's times are floats up to ``1e300`` (or beyond), so it is called with
    placeholder steps and the time-dependent columns are recomputed here from ``log t``.
    """
    from ..diagnostics import norm

    K = len(log_t)
    base = build_history(
        np.ones(K, dtype=np.int64), thetas, mdl, d, Z, targets, loss, ref_vec, w_tilde, meta
    )
    cols = dict(base.columns)
    out: dict[str, np.ndarray] = {
        "step": np.asarray(t, dtype=np.float64),
        "log_time": np.asarray(log_t, dtype=np.float64),
    }
    for name, col in cols.items():
        if name != "step":
            out[name] = col
    if "residual_norm" in out and ref_vec is not None:
        B = base.iterates  # finite when residual_norm is
        lt = np.where(np.isfinite(log_t), log_t, np.nan)
        residual = B - lt[:, None] * np.asarray(ref_vec, dtype=np.float64)[None, :]
        out["residual_norm"] = np.asarray(norm(residual, axis=1), dtype=np.float64)
        if w_tilde is not None:
            r4 = residual - np.asarray(w_tilde, dtype=np.float64)[None, :]
            out["theorem4_residual_norm"] = np.asarray(norm(r4, axis=1), dtype=np.float64)
    return _times_past_float64(base.with_columns(out, FlowHistory))


def _times_past_float64(history: FlowHistory) -> FlowHistory:
    """Times ``t`` beyond 1.8e308 are not a column (``log_time`` has them exactly)."""
    t = history.columns["step"]
    if not np.all(np.isfinite(t)):
        first = int(np.argmax(~np.isfinite(t)))
        del history.columns["step"]
        history.overflowed["step"] = (
            "the time t overflows float64 from log t = "
            f"{history.columns['log_time'][first]:.6g} on; read log_time"
        )
    return history


# ---- multi-class -------------------------------------------------------------------------------


@dataclass
class MulticlassRun:
    """The result of :func:`train_multiclass`.

    Attributes
    ----------
    coef : ndarray (d, K)
        Final ``W``; column ``k`` is ``w_k`` for class ``classes[k]``.
    classes : ndarray (K,)
        The sorted distinct labels.
    steps : ndarray (n_rec,)
        Checkpoint step numbers (log-spaced, :func:`fastbias.optim.checkpoint_steps`).
    iterates : ndarray (n_rec, d, K)
        ``W`` after each checkpoint step.
    log_loss : ndarray (n_rec,)
        ``log L(W)`` (eq. C.1), finite even when ``L`` underflows.
    normalized_margin : ndarray (n_rec,)
        ``min_n min_{k != y_n} (w_{y_n} - w_k).x_n / ||W||_F``, the quantity eq. 4.1 maximizes.
    """

    coef: np.ndarray
    classes: np.ndarray
    steps: np.ndarray
    iterates: np.ndarray
    log_loss: np.ndarray
    normalized_margin: np.ndarray
    status: str = "completed"
    settings: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``classes[argmax_k w_k.x]``."""
        return self.classes[np.argmax(np.asarray(X, dtype=np.float64) @ self.coef, axis=1)]


def multiclass_log_loss(X: np.ndarray, W: np.ndarray, labels: np.ndarray) -> float:
    """``log L(W)`` of eq. C.1 without underflow: ``log sum_n softplus(r_n)``."""
    from ..kernels._reference_optim import multiclass_weights

    _, _, _, r = multiclass_weights(X, W, labels)
    # log softplus(r): log(log1p(e^r)) = r + log1p(-e^r / 2 + ...) for r << 0 (no underflow)
    small = r < -30.0
    log_sp = np.empty_like(r)
    log_sp[small] = r[small] + np.log1p(-0.5 * np.exp(r[small]))
    log_sp[~small] = np.log(np.logaddexp(0.0, r[~small]))
    top = log_sp.max()
    return float(top + np.log(np.sum(np.exp(log_sp - top))))


def _multiclass_run(spec: RunSpec, state: RunState, status: str) -> MulticlassRun:
    X, codes = spec.X, spec.y
    N, d, K = spec.N, spec.d, spec.classes.size
    iterates = state.rec[: state.k_rec].reshape(-1, d, K)
    log_loss = np.array([multiclass_log_loss(X, Wt, codes) for Wt in iterates])
    rows = np.arange(N)
    margins = []
    for Wt in iterates:
        S = X @ Wt
        gap = S[rows, codes][:, None] - S
        gap[rows, codes] = np.inf
        nrm = float(vector_norm(Wt.ravel()))
        margins.append(gap.min() / nrm if nrm > 0 else 0.0)  # W = 0: margin 0, not NaN
    return MulticlassRun(
        coef=state.theta.reshape(d, K),
        classes=spec.classes,
        steps=spec.schedule[: state.k_rec],
        iterates=iterates,
        log_loss=log_loss,
        normalized_margin=np.array(margins),
        status=status,
        settings=spec.settings,
    )
