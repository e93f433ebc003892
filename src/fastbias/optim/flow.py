"""Gradient flow ``d theta/dt = -grad L(theta)`` to ``t = 1e300`` and beyond, in compiled code.

GD with step size ``eta`` follows the flow at times ``t = eta k`` as ``eta -> 0`` (Soudry et
al. 2018, Appendix B, "the continuous time version of GD"; Gunasekar et al. 2018 state their
deep-model results for the flow too). The flow is integrated in log-time ``s = log(1 + t)``
with an error-controlled Dormand-Prince 5(4) method (``kernels._numba_flow``): the factor
``1 + t = exp(s)`` of ``d theta/ds`` is absorbed into the log-scale of the gradient, so times of
``1e300`` (or ``exp(1e4)`` with ``log_t_max``) and losses of ``exp(-1e4)`` are handled without
overflow or underflow, and on separable data the integrator needs a few steps per unit of
``log t``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .._progress import ProgressBar
from .._validation import (
    check_choice,
    check_initial_outputs,
    check_positive,
    check_positive_int,
    check_vector,
    check_X_targets,
    check_X_y,
)
from ..diagnostics import norm as vector_norm
from ..exceptions import NotSeparableError, SolverError
from ..kernels import _numba_flow as nf
from ..losses import get_loss
from ..models import (
    FullyConnected,
    Linear,
    Model,
    Network,
    get_model,
)
from ..models.registry import gradient_data
from ..references._scale import flow_scale_exponent
from .driver import InterruptFlag
from .history import History, Run, build_history, build_network_history
from .reference import resolve_reference

__all__ = ["flow", "FlowHistory"]

LOSSES = ("exp", "exponential", "logistic", "squared")
_LN10 = float(np.log(10.0))
_RTOL_RANGE = (1e-13, 0.1)


class FlowHistory(History):
    """A :class:`History` whose ``"step"`` column holds the flow time ``t`` (float64).

    ``h["step"]`` is ``t`` and ``h["log_time"]`` is ``log t``, exact for every horizon; when
    ``t`` passes 1.8e308 (``log_t_max`` beyond 709.78) ``step`` is not a column (reading it
    raises OverflowError pointing to ``log_time``).
    """

    def _fmt(self, name: str, v, width: int) -> str:
        return f"{float(v):>{width}.5g}"


def _time_grid(
    record: Any, log_t_end: float, t_max_given: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Increasing recording times ``(log t, t)``, ending at the final time.

    ``t`` is exact where it is given (explicit times, ``t_max``, powers ``10**(k/record)``)
    and ``inf`` beyond the float64 range.
    """
    t_end = t_max_given if t_max_given is not None else _exp(log_t_end)
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        per_decade = int(record)
        if per_decade < 1:
            raise ValueError(f"record must be >= 1 points per decade; got {per_decade}.")
        end10 = log_t_end / _LN10
        lo = min(0, int(np.floor(end10)) - 3)
        k = np.arange(lo * per_decade, int(np.floor(end10 * per_decade + 1e-9)) + 1)
        lt = k / per_decade * _LN10
        keep = lt < log_t_end - 1e-12 * max(1.0, abs(log_t_end))
        with np.errstate(over="ignore"):
            t = 10.0 ** (k[keep] / per_decade)
        return np.append(lt[keep], log_t_end), np.append(t, t_end)
    times = np.asarray(record, dtype=np.float64).ravel()
    if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times <= 0):
        raise ValueError(
            "record times must be finite and > 0 (or an int: points per decade); got "
            f"{times.size} values with range [{times.min() if times.size else '-'}, "
            f"{times.max() if times.size else '-'}]."
        )
    times = np.unique(times)
    lt = np.log(times)
    if lt[-1] > log_t_end + 1e-12 * max(1.0, abs(log_t_end)):
        limit = f"t_max={t_max_given:g}" if t_max_given is not None else f"exp({log_t_end:g})"
        raise ValueError(f"record times must be <= {limit}; got {times.max():g}.")
    keep = lt < log_t_end
    return np.append(lt[keep], log_t_end), np.append(times[keep], t_end)


def _exp(x: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _t_of_s(s: float) -> float:
    """``t = exp(s) - 1`` (``inf`` beyond the float64 range)."""
    with np.errstate(over="ignore"):
        return float(np.expm1(s))


def _log_t_of_s(s: np.ndarray) -> np.ndarray:
    """``log t`` for ``s = log(1 + t)``, accurate for tiny and huge ``s``."""
    s = np.asarray(s, dtype=np.float64)
    return s + np.log(-np.expm1(-s))


def flow(
    X,
    y=None,
    *,
    model: str | Model = "linear",
    loss: str = "exp",
    t_max: float = 1e300,
    log_t_max: float | None = None,
    init: Any = None,
    init_scale: float = 1.0,
    seed: int | None = 0,
    record: int | Any = 10,
    reference: Any = "auto",
    rtol: float = 1e-8,
    atol: float = 1e-12,
    max_steps: int = 1_000_000,
    progress: bool = False,
    chunk_seconds: float = 0.5,
) -> Run:
    """Gradient flow ``d theta/dt = -grad L(theta)`` from ``t = 0`` to ``t_max``, compiled.

    The ``eta -> 0`` limit of :func:`fastbias.train` (Soudry et al. 2018, Appendix B;
    Gunasekar et al. 2018): GD step ``k`` with step size ``eta`` is close to the flow at time
    ``t = eta k``. On separable data ``w(t) = w_hat log t + w_tilde + o(1)`` for the linear
    model (Theorems 3-4 with ``eta = 1``: ``exp(-z_n.w_tilde) = alpha_n`` on the support).
    Integrated in ``s = log(1 + t)`` by an error-controlled Dormand-Prince 5(4) method whose
    right-hand side ``exp(s + log_scale) g`` carries the gradient in log domain.

    Parameters
    ----------
    X, y
        As for :func:`fastbias.train`: samples and labels (or regression targets for
        ``loss="squared"``).
    model : str or Model
        ``"linear"`` or an instance of ``Linear``, ``FullyConnected``, ``Diagonal``,
        ``Convolutional`` or ``Tensor``.
    loss : {"exp", "logistic", "squared"}
        The exp and logistic losses need linearly separable data.
    t_max : float
        Final time, finite and > 0 (default ``1e300``).
    log_t_max : float, optional
        Final time given as ``log t`` (overrides ``t_max``), for horizons beyond the float64
        range such as ``t = exp(2e4)``; the history then has no ``"step"`` column (``t`` does
        not fit in float64) and ``"log_time"`` keeps the exact value.
    init, init_scale, seed
        Initial parameters, as for :func:`fastbias.train` (zero for the linear model).
    record : int or array of float
        Recording times per decade of ``t``: ``10**(k/record)`` from
        ``min(1, 10**(floor(log10 t_max) - 3))`` on, plus ``t_max``; or explicit times in
        ``(0, t_max]``. The integrator lands on each of them (no interpolation).
    reference : "auto", "svm", "min-norm", None, array or MaxMarginSolution
        What gaps are measured against, as for :func:`fastbias.train`. The Theorem 4
        residual uses ``w_tilde`` for ``eta = 1``.
    rtol, atol : float
        Local error tolerances of the integrator (relative, in ``[1e-13, 0.1]``; absolute,
        ``>= 0``), in the mixed norm ``atol + rtol |theta_i|``.
    max_steps : int
        Largest number of Runge-Kutta steps (accepted and rejected); the run stops with
        status ``"max_steps"`` and a warning when it is reached.
    progress : bool
        Show a progress bar over ``log t`` on stderr, updated once per compiled chunk.
    chunk_seconds : float
        Target wall time of one compiled call.

    Returns
    -------
    Run
        ``.history`` is a :class:`FlowHistory`: the columns of :func:`fastbias.train`'s
        history with ``"step"`` holding the time ``t``, plus ``"log_time"``. ``.status`` is
        ``"completed"``, ``"converged"`` (squared loss: the flow came to rest before
        ``t_max``, to the tolerance; the later records repeat the final point),
        ``"max_steps"`` or ``"interrupted"``. ``.settings`` holds ``accepted_steps``,
        ``rejected_steps`` and ``gradient_evaluations``.

    Raises
    ------
    NotSeparableError
        For the exp or logistic loss on data that no linear predictor separates.
    SolverError
        When the step size underflows or the initial velocity overflows.

    Examples
    --------
    Soudry et al. Appendix B, one point, exp loss: ``w_1(t) = log(t + exp(w_1(0)))``.

    >>> import numpy as np
    >>> run = flow(np.array([[1.0, 0.0]]), init=[0.5, 0.0], t_max=1e300)
    >>> bool(abs(run.coef[0] - np.logaddexp(np.log(1e300), 0.5)) < 1e-6)
    True
    """
    check_choice(loss, "loss", LOSSES)
    regression = loss == "squared"
    if regression:
        X, y = check_X_targets(X, y)
        Z, targets = X, y
        loss_code = 2
    else:
        X, y = check_X_y(X, y)
        lossobj = get_loss(loss)
        loss, loss_code = lossobj.name, lossobj.code
        Z, targets = np.ascontiguousarray(X * y[:, None]), np.zeros(X.shape[0])
    N, d = X.shape
    mdl = get_model(model)
    mdl.shapes(d)

    t_max_given: float | None = None
    if log_t_max is None:
        try:
            t_max_f = float(t_max)
        except (TypeError, ValueError):
            raise ValueError(f"t_max must be a number > 0; got {t_max!r}.") from None
        if not np.isfinite(t_max_f) or t_max_f <= 0:
            raise ValueError(
                f"t_max must be > 0 and finite; got {t_max_f}. For horizons beyond "
                "1.8e308 pass log_t_max (the log of the final time)."
            )
        t_max_given = t_max_f
        log_t_end = float(np.log(t_max_f))
    else:
        try:
            log_t_end = float(log_t_max)
        except (TypeError, ValueError):
            raise ValueError(f"log_t_max must be a finite number; got {log_t_max!r}.") from None
        if not np.isfinite(log_t_end):
            raise ValueError(f"log_t_max must be finite; got {log_t_end}.")
    try:
        rtol = float(rtol)
        atol = float(atol)
    except (TypeError, ValueError):
        raise ValueError(f"rtol and atol must be numbers; got {rtol!r}, {atol!r}.") from None
    if not (_RTOL_RANGE[0] <= rtol <= _RTOL_RANGE[1]):
        raise ValueError(
            f"rtol must be in [{_RTOL_RANGE[0]:g}, {_RTOL_RANGE[1]:g}]; got {rtol}. "
            "Below 1e-13 float64 round-off dominates the local error."
        )
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be >= 0 and finite; got {atol}.")
    max_steps = check_positive_int(max_steps, "max_steps")
    chunk_seconds = check_positive(chunk_seconds, "chunk_seconds")
    init_scale = check_positive(init_scale, "init_scale")

    if isinstance(mdl, Linear) and init is not None and not isinstance(init, str):
        arr = np.asarray(init, dtype=np.float64)
        init = [check_vector(arr[0] if arr.ndim == 2 and arr.shape[0] == 1 else arr, d, "init")]
    params0 = mdl.init_params(d, init, init_scale, seed)
    theta0 = mdl.flatten(params0)
    check_initial_outputs(mdl, params0, X, init_scale)
    if mdl.depth > 1:
        cond = mdl.convergence_condition(params0, "regression" if regression else "classification")
        if cond is not None and not cond.holds:
            warnings.warn(
                f"the initialization does not satisfy the sufficient convergence condition of "
                f"{cond.theorem} (lambda = {cond.margin:.3g} <= 0); the loss may not go to zero.",
                stacklevel=2,
            )
    network = isinstance(mdl, Network)
    if network:  # the network sees the inputs and the labels (or regression targets)
        Z, targets = X, y
        if not (reference is None or (isinstance(reference, str) and reference == "auto")):
            raise ValueError(f"{mdl!r} has no reference direction; pass reference=None.")
    # Data far from unit scale: integrate the same path on X / 2**k with theta' = 2**a theta
    # in time t' = 2**(2a) t (a = k / L), then map the rows back (references._scale).
    k_c = flow_scale_exponent(Z, mdl.depth)
    a_exp = k_c // mdl.depth
    lshift = 2.0 * a_exp * np.log(2.0)  # log t' - log t
    kind, ZT, ints, offsets, pos, jidx, vals, net = gradient_data(
        mdl, np.ldexp(Z, -k_c) if k_c else Z
    )

    if network:
        ref_vec, ref_obj, w_tilde = None, None, None
    else:
        ref_vec, ref_obj, w_tilde = _flow_reference(reference, mdl, X, y, theta0, regression, loss)

    log_times, times = _time_grid(record, log_t_end, t_max_given)
    rec_s = np.logaddexp(0.0, log_times + lshift)  # s = log(1 + t')
    rec_s, first = np.unique(rec_s, return_index=True)
    log_times, times = log_times[first], times[first]
    s_end = float(rec_s[-1])
    theta = np.ldexp(np.array(theta0, dtype=np.float64), a_exp)
    n = theta.size

    def t_at(s: float) -> float:  # the caller's time t at the integrator's s = log(1 + t')
        return _exp(float(_log_t_of_s(s)) - lshift) if lshift else _t_of_s(s)

    def log_t_at(s: float) -> float:
        return float(_log_t_of_s(s)) - lshift

    rec_theta = np.zeros((rec_s.size, n))
    state = np.zeros(nf.STATE_SIZE)
    k1 = np.zeros(n)

    status = "completed"
    bar = ProgressBar(1000, enabled=progress)
    chunk = 256
    taken = 0
    start = time.perf_counter()
    with InterruptFlag() as interrupt:
        while True:
            budget = min(chunk, max_steps - taken)
            before = state[nf.ST_ACC] + state[nf.ST_REJ]
            t0 = time.perf_counter()
            code = nf.integrate(
                kind, theta, state, k1, s_end, rec_s, rec_theta, rtol, atol, budget,
                ZT, targets, loss_code, ints, offsets, pos, jidx, vals, net,
            )  # fmt: skip
            elapsed = time.perf_counter() - t0
            did = int(state[nf.ST_ACC] + state[nf.ST_REJ] - before)
            taken += did
            bar.update(int(1000 * state[nf.ST_S] / s_end) if s_end > 0 else 1000)
            if code == nf.FLOW_BAD_START:
                bar.close()
                raise SolverError(
                    f"the gradient flow's velocity is not finite at t = "
                    f"{t_at(state[nf.ST_S]):.3g}: the loss or its gradient overflows "
                    "float64 there (margins below about -700 for the exp loss). Start closer "
                    "to the data scale (smaller init_scale) or use the logistic loss."
                )
            if code == nf.FLOW_UNDERFLOW:
                bar.close()
                raise SolverError(
                    f"the step size underflowed at t = {t_at(state[nf.ST_S]):.3g} "
                    f"(log t = {log_t_at(state[nf.ST_S]):.6g}): the flow is too fast "
                    f"to resolve in log-time there; loosen rtol={rtol:g} or rescale the data."
                )
            if code in (nf.FLOW_DONE, nf.FLOW_STATIONARY):
                if code == nf.FLOW_STATIONARY:
                    status = "converged"
                break
            if taken >= max_steps:
                status = "max_steps"
                warnings.warn(
                    f"stopped at max_steps={max_steps} at t = {t_at(state[nf.ST_S]):.3g} "
                    f"(log t = {log_t_at(state[nf.ST_S]):.4g} of {log_t_end:.4g}); "
                    "raise max_steps or rtol.",
                    stacklevel=2,
                )
                break
            if interrupt.hit:
                status = "interrupted"
                break
            if elapsed > 0 and did > 0:
                chunk = max(16, min(10 * chunk, int(did * chunk_seconds / elapsed)))
    bar.close()
    total = time.perf_counter() - start

    k_rec = int(state[nf.ST_KREC])
    s_final = float(state[nf.ST_S])
    if a_exp:
        theta = np.ldexp(theta, -a_exp)
        rec_theta = np.ldexp(rec_theta, -a_exp)
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

    settings = {
        "model": repr(mdl),
        "loss": loss,
        "t_max": _exp(log_t_end) if t_max_given is None else t_max_given,
        "log_t_max": log_t_end,
        "method": "dopri5 in s = log(1 + t)",
        "rtol": rtol,
        "atol": atol,
        "init_scale": init_scale,
        "seed": seed,
        "accepted_steps": int(state[nf.ST_ACC]),
        "rejected_steps": int(state[nf.ST_REJ]),
        "gradient_evaluations": int(state[nf.ST_EVAL]),
        "t_final": t_at(s_final),
        "log_t_final": log_t_at(s_final) if s_final > 0 else -np.inf,
    }
    meta = dict(settings)
    if ref_vec is not None:
        meta["reference_norm"] = float(vector_norm(ref_vec))
    if network:
        base = build_network_history(
            np.ones(len(rec_t), dtype=np.int64), rec_theta, mdl, X, y, loss, meta
        )
        cols = {"step": np.asarray(rec_t, dtype=np.float64), "log_time": rec_log_t}
        cols.update({k: v for k, v in base.columns.items() if k != "step"})
        history = _times_past_float64(base.with_columns(cols, FlowHistory))
    else:
        history = _flow_history(
            rec_t, rec_log_t, rec_theta, mdl, d, Z, targets, loss, ref_vec, w_tilde, meta
        )
    params = [np.array(p, dtype=np.float64) for p in mdl.unflatten(theta, d)]
    return Run(
        coef=None if network and not mdl.linear_predictor else mdl.predictor(params),
        params=params,
        history=history,
        status=status,
        steps_done=int(state[nf.ST_ACC]),
        settings=settings,
        reference=ref_obj,
        elapsed=total,
        model=mdl,
    )


def _flow_reference(reference, mdl, X, y, theta0, regression, loss):
    """``(reference vector, reference object, w_tilde)``; raises on non-separable data."""
    from ..references import max_margin

    if not regression:
        try:
            sol = max_margin(X, y)
        except NotSeparableError as exc:
            raise NotSeparableError(
                f"gradient flow with the {loss} loss needs linearly separable data: otherwise "
                "the loss has a finite minimizer where the flow comes to rest and log t cannot "
                f"advance to t_max. ({exc}) Use loss='squared' or separable data."
            ) from None
        if isinstance(reference, str) and (
            reference == "svm"
            or (reference == "auto" and isinstance(mdl, (Linear, FullyConnected)))
        ):
            reference = sol
    w0 = theta0 if isinstance(mdl, Linear) else None
    return resolve_reference(reference, mdl, X, y, 1.0, w0, "fixed", regression)


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
