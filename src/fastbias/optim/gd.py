"""The training engine: validation and dispatch in Python, whole chunks of steps in kernels.

A run of ``steps`` GD steps is executed by compiled kernels in as few calls as possible: one
call when the run is short, otherwise chunks of about ``chunk_seconds`` each, so that a progress
bar can be updated and Ctrl-C can stop the run between chunks without losing finished work.
Python never runs once per step.
"""

from __future__ import annotations

import contextvars
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import ProgressBar
from .._validation import (
    ScaleOutOfRangeError,
    check_checkpoint_path,
    check_choice,
    check_initial_outputs,
    check_positive,
    check_positive_int,
    check_vector,
    check_X_targets,
    check_X_y,
    log_sigma_max,
    representable_lr,
)
from ..diagnostics import norm as vector_norm
from ..exceptions import DivergenceError
from ..kernels import STATUS_DIVERGED, STEP_RULE_CODES
from ..losses import get_loss, log_total_loss
from ..models import (
    Convolutional,
    Diagonal,
    FullyConnected,
    Linear,
    Model,
    Network,
    Tensor,
    get_model,
)
from ._outcome import (
    LONG_RUN_SECONDS,
    frozen_status,
    lr_advice,
    time_estimate_note,
    warn_if_not_separable,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .driver import InterruptFlag
from .history import Run, build_history, build_network_history, checkpoint_steps
from .reference import l1_reference, resolve_reference

__all__ = ["train", "resume", "default_lr"]

PRECISIONS = ("float64", "extended", "compensated")
LOSSES = ("exp", "exponential", "logistic", "squared")
_DIVERGENCE_FACTOR = 23.0  # stop when the loss exceeds its start by e**23 (~1e10)
# When set, train returns its planned _RunState instead of running it (optim.lockstep).
PLAN_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("plan_only", default=False)


def default_lr(Z: np.ndarray, w0: np.ndarray | None = None, loss: str = "exp") -> float:
    """A step size below ``2/beta`` at the starting point ``w0`` of the linear model.

    The logistic loss is ``sigma_max(Z)**2 / 4``-smooth everywhere: ``1/sigma_max**2``. The
    exponential loss has Hessian ``sum_n exp(-m_n) z_n z_n^T <= exp(-min_n m_n) Z^T Z``, so at
    ``w0`` the step ``exp(min(min_n m_n, 0)) / sigma_max**2`` is safe (``1/sigma_max**2`` at 0).
    The squared loss is ``sigma_max**2``-smooth: ``1/sigma_max**2``.
    """
    log_lr = -2.0 * log_sigma_max(Z)
    if w0 is not None and loss in ("exp", "exponential"):
        log_lr += min(float(np.min(Z @ w0)), 0.0)
    return representable_lr(log_lr, "1/sigma_max(X)**2")


def _deep_default_lr(
    Z: np.ndarray, theta0: np.ndarray, margins0: np.ndarray, depth: int, lossname: str
) -> float:
    """A heuristic safe step for a depth-L model: the linear one (with the exp loss's
    ``exp(-min margin)`` factor at the initial margins) divided by the size of the other
    layers' product (the Hessian of ``f`` scales like ``||theta||^(2(L-1))``)."""
    log_lr = -2.0 * log_sigma_max(Z) - np.log(depth)
    if lossname in ("exp", "exponential"):
        log_lr += min(float(np.min(margins0)), 0.0)
    theta_norm = float(vector_norm(theta0))
    if theta_norm > 1.0:
        log_lr -= 2 * (depth - 1) * np.log(theta_norm)
    return representable_lr(log_lr, "1/(L sigma_max(X)**2 ||theta0||**(2(L-1)))")


def _schedule(record: Any, steps: int) -> np.ndarray:
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        return checkpoint_steps(steps, int(record))
    sched = np.unique(np.asarray(record, dtype=np.int64).ravel())
    if sched.size == 0 or sched[0] < 1 or sched[-1] > steps:
        raise ValueError(
            f"record steps must lie in [1, steps={steps}]; got range "
            f"[{sched.min() if sched.size else '-'}, {sched.max() if sched.size else '-'}]."
        )
    return np.unique(np.concatenate([sched, [steps]])).astype(np.int64)


def train(
    X,
    y=None,
    *,
    model: str | Model = "linear",
    loss: str = "exp",
    steps: int = 1000,
    lr: float | None = None,
    init: Any = None,
    init_scale: float = 1.0,
    seed: int | None = 0,
    precision: str = "float64",
    record: int | Any = 10,
    reference: Any = "auto",
    step_rule: str = "fixed",
    progress: bool = False,
    chunk_seconds: float = 0.5,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 10.0,
    optimizer: str = "gd",
    optimizer_options: dict[str, Any] | None = None,
) -> Run:
    """Train ``f(x) = x.P(theta)`` by gradient descent, whole runs in compiled kernels.

    Soudry et al. eq. 2.2 for the linear model; Gunasekar et al. eq. 7 for the deep models of
    :mod:`fastbias.models`.

    Parameters
    ----------
    X : array of shape (N, d)
        Samples. ``y``: labels (-1/+1, any two-class coding, or None for all +1) for the
        classification losses; real targets for ``loss="squared"``.
    model : str or Model
        ``"linear"``, or an instance such as ``FullyConnected([50])``, ``Diagonal(2)``.
    loss : {"exp", "logistic", "squared"}
        Margin losses carry gradients in log domain; ``"squared"`` is ``1/2 sum (f - y)^2``.
    steps : int
        Number of GD steps T.
    lr : float, optional
        Step size eta; default :func:`default_lr` for the linear model (``1/sigma_max(Z)**2``
        from ``w = 0``), a depth-scaled version of it for deep models.
    init : array, list of arrays, or {"gaussian", "yun", "zeros"}, optional
        Initial parameters (one array per layer), or a named seeded scheme; see
        :meth:`fastbias.models.Model.init_params`. Default: zero for the linear model,
        ``"gaussian"`` for deep models.
    init_scale : float
        ``alpha``: multiplies the initial directions.
    seed : int, optional
        Seed of the named initialization schemes.
    precision : {"float64", "extended", "compensated"}
        ``"extended"`` runs an 80-bit long double C kernel; ``"compensated"`` keeps float64
        iterates but sums the updates with a carried compensation term, so late updates far
        below ``ulp(w)`` are not rounded away (linear model, exp/logistic loss).
    record : int or array of int
        Checkpoints per decade (log-spaced, plus the last step), or explicit step numbers.
    reference : "auto", "svm", "min-norm", None, array or MaxMarginSolution
        What gaps are measured against. ``"auto"``: the exact L2 max-margin solution for the
        linear and fully connected models on separable data (Gunasekar Theorem 1); the
        minimum-norm interpolant for the linear model with squared loss; none otherwise.
    step_rule : {"fixed", "normalized", "loss-scaled", "loss-scaled-backtracking"}
        ``eta_t = eta``, ``eta/||grad L||`` or ``eta/L``; the last with ``eta`` adapted:
        multiplied by ``2**(1/8)`` after a step that lowered the loss, halved (and the step
        undone) after one that raised it (:mod:`fastbias.optim.backtracking`).
    progress : bool
        Show a progress bar with ETA on stderr, updated once per chunk.
    chunk_seconds : float
        Target wall time of one compiled call for long runs.
    checkpoint : path, optional
        Save the run's whole state there (atomically) every ``checkpoint_every`` seconds, at
        Ctrl-C and at the end; continue it with :func:`resume`.
    checkpoint_every : float
        Seconds between checkpoints.
    optimizer : {"gd", "momentum", "sgd", "adam", "adagrad", "coordinate"}
        The update rule (Soudry et al. Sections 3-4, App. E): plain GD (default), heavy-ball
        momentum, mini-batch SGD with a seeded index sequence, Adam, AdaGrad, or greedy
        coordinate descent (linear model). Compiled like GD; see
        :mod:`fastbias.optim.optimizers`.
    optimizer_options : dict, optional
        Its hyper-parameters (``beta``; ``batch_size``, ``seed``, ``momentum``; ``beta1``,
        ``beta2``, ``eps``); SGD's ``seed`` defaults to ``seed``.

    Returns
    -------
    Run
        ``.coef`` (beta), ``.params`` (layers), ``.history``, ``.rates()``.

    Raises
    ------
    DivergenceError
        When the loss blows up (the step size is too large); names the step and a safe lr.
    """
    check_choice(loss, "loss", LOSSES)
    regression = loss == "squared"
    if regression:
        X, y = check_X_targets(X, y)
        Z, targets = X, y
        loss_code = 2
    else:
        X, y = check_X_y(X, y)
        Z, targets = X * y[:, None], np.zeros(X.shape[0])
        loss_code = get_loss(loss).code
        loss = get_loss(loss).name
    N, d = X.shape
    mdl = get_model(model)
    mdl.shapes(d)  # validates the architecture against d
    steps = check_positive_int(steps, "steps")
    check_choice(step_rule, "step_rule", list(STEP_RULE_CODES))
    check_choice(precision, "precision", PRECISIONS)
    if precision == "extended" and (
        regression or not isinstance(mdl, (Linear, Diagonal, FullyConnected, Convolutional, Tensor))
    ):
        raise ValueError(
            "precision='extended' is available for Linear, Diagonal, FullyConnected, "
            f"Convolutional and Tensor with the exp or logistic loss; got model {mdl!r} with "
            f"loss {loss!r}."
        )
    if precision == "compensated" and not isinstance(
        mdl, (Linear, Diagonal, FullyConnected, Convolutional, Tensor, Network)
    ):
        raise ValueError(
            "precision='compensated' is available for Linear, Diagonal, FullyConnected, "
            f"Convolutional, Tensor and Network; got model {mdl!r}."
        )
    from .optimizers import check_optimizer, default_optimizer_lr

    if optimizer == "sgd":
        optimizer_options = {"seed": 0 if seed is None else seed, **(optimizer_options or {})}
    opt_options = check_optimizer(
        optimizer, optimizer_options, step_rule=step_rule, model=mdl, n_samples=N
    )
    if optimizer != "gd" and precision != "float64":
        raise ValueError(f"optimizer={optimizer!r} runs in precision='float64' only.")
    if step_rule == "loss-scaled-backtracking" and (optimizer != "gd" or precision != "float64"):
        raise ValueError(
            "step_rule='loss-scaled-backtracking' is a GD rule in float64; got "
            f"optimizer={optimizer!r}, precision={precision!r}."
        )
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
    linear_predictor = getattr(mdl, "linear_predictor", True)
    if linear_predictor:
        outputs0 = X @ mdl.predictor(params0)
    else:  # a ReLU network: f(x) = Phi(theta; x) is not x.beta
        outputs0 = mdl.forward(params0, X)
    margins0 = outputs0 - y if regression else y * outputs0
    try:
        if isinstance(mdl, Linear):
            safe_lr = default_lr(Z, theta0, loss)
        else:
            safe_lr = _deep_default_lr(Z, theta0, margins0, mdl.depth, loss)
    except ScaleOutOfRangeError:
        if lr is None:
            raise
        safe_lr = float("nan")  # the caller's lr is used; advice says to rescale X
    if lr is None:
        lr = default_optimizer_lr(optimizer, opt_options, safe_lr, N)
    else:
        lr = check_positive(lr, "lr")
    sched = _schedule(record, steps)
    if not linear_predictor:
        if not (
            reference is None or (isinstance(reference, str) and reference in ("auto", "none"))
        ):
            raise ValueError(
                f"{mdl!r} is not a linear predictor x -> x.beta, so it has no reference "
                "direction; pass reference=None (see fastbias.analysis for its optimality)."
            )
        reference = None
    if optimizer == "coordinate" and isinstance(reference, str) and reference == "auto":
        # greedy coordinate descent goes to the L1 max margin (Soudry Section 4.2)
        reference = l1_reference(X, y) if not regression else None
    ref_vec, ref_obj, w_tilde = resolve_reference(
        reference,
        mdl,
        X,
        y,
        lr,
        theta0 if isinstance(mdl, Linear) and optimizer == "gd" else None,
        step_rule,
        regression,
    )

    if regression:
        loss0 = 0.5 * float(np.sum(margins0**2))
        log_loss0 = np.log(loss0) if loss0 > 0 else -np.inf
        floor = -max(loss0, 1.0) * np.exp(_DIVERGENCE_FACTOR)
    else:
        log_loss0 = log_total_loss(margins0, loss)
        if loss_code == 0:
            floor = -(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)
        else:
            floor = -np.exp(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)

    dtype = np.longdouble if precision == "extended" else np.float64
    settings = {
        "model": repr(mdl),
        "depth": mdl.depth,
        "loss": loss,
        "lr": lr,
        "steps": steps,
        "precision": precision,
        "step_rule": step_rule,
        "init_scale": init_scale,
        "seed": seed,
        "optimizer": optimizer,
    }
    if optimizer != "gd":
        settings["optimizer_options"] = dict(opt_options)
    state = _RunState(
        X=X,
        y=y,
        Z=Z,
        targets=targets,
        model=mdl,
        loss=loss,
        loss_code=loss_code,
        lr=lr,
        safe_lr=safe_lr,
        step_rule=step_rule,
        precision=precision,
        record=record,
        sched=sched,
        rec=np.zeros((len(sched), theta0.size), dtype=dtype),
        k_rec=0,
        done=0,
        steps=steps,
        theta=np.array(theta0, dtype=dtype),
        floor=floor,
        log_loss0=log_loss0,
        ref_vec=ref_vec,
        ref_obj=ref_obj,
        w_tilde=w_tilde,
        settings=settings,
        optimizer=optimizer,
        optimizer_options=opt_options,
    )
    if PLAN_ONLY.get():  # train_batch's lock-step path runs the planned states itself
        return state
    return _execute(state, progress, chunk_seconds, checkpoint, checkpoint_every)


@dataclass
class _RunState:
    """Everything a run needs to continue: what a checkpoint stores."""

    X: np.ndarray
    y: np.ndarray
    Z: np.ndarray
    targets: np.ndarray
    model: Model
    loss: str
    loss_code: int
    lr: float
    safe_lr: float
    step_rule: str
    precision: str
    record: Any
    sched: np.ndarray
    rec: np.ndarray
    k_rec: int
    done: int
    steps: int
    theta: np.ndarray
    floor: float
    log_loss0: float
    ref_vec: Any
    ref_obj: Any
    w_tilde: Any
    settings: dict[str, Any]
    elapsed: float = 0.0
    optimizer: str = "gd"
    optimizer_options: dict[str, Any] | None = None
    runner_state: Any = None  # what a runner keeps between calls (``run.get_state()``)
    # theta = 2**scale[0] * (stored theta) for runners that rescale (homogeneous deep models)
    scale: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    rec_scale: np.ndarray | None = None

    def extend(self, more: int) -> None:
        """Continue for ``more`` steps: a new target and the checkpoint rows beyond ``done``."""
        self.steps = self.done + more
        self.settings["steps"] = self.steps
        kept = self.sched[: self.k_rec]
        ahead = _schedule(self.record, self.steps)
        ahead = ahead[ahead > self.done]
        self.sched = np.concatenate([kept, ahead]).astype(np.int64)
        self.rec = np.concatenate(
            [self.rec[: self.k_rec], np.zeros((len(ahead), self.theta.size), self.rec.dtype)]
        )
        self.rec_scale = np.concatenate(
            [self.row_scales()[: self.k_rec], np.zeros(len(ahead), dtype=np.int64)]
        )

    def row_scales(self) -> np.ndarray:
        if self.rec_scale is None or len(self.rec_scale) != len(self.rec):
            self.rec_scale = np.zeros(len(self.rec), dtype=np.int64)
        return self.rec_scale


def _execute(state, progress, chunk_seconds, checkpoint, checkpoint_every) -> Run:
    """Run ``state`` to its target in compiled chunks; checkpoint; build the Run."""
    mdl, Z, theta = state.model, state.Z, state.theta
    N, d = state.X.shape
    network = not getattr(mdl, "linear_predictor", True)
    if state.step_rule == "loss-scaled-backtracking":
        from .backtracking import backtracking_runner

        if network:
            labels = state.y if state.loss != "squared" else state.targets
            runner = backtracking_runner(mdl, state.X, labels, state.loss_code)
        else:
            runner = backtracking_runner(mdl, Z, state.targets, state.loss_code)
    elif network and state.optimizer == "gd":
        labels = state.y if state.loss != "squared" else state.targets
        runner = mdl.runner_xy(state.X, labels, state.loss_code, state.precision)
    elif state.optimizer == "gd":
        runner = mdl.runner(Z, state.targets, state.loss_code, state.precision)
    else:
        from .optimizers import make_optimizer_runner

        if getattr(mdl, "linear_predictor", True):
            data, labels = Z, state.targets
        else:  # a ReLU network sees the inputs and the labels
            data = state.X
            labels = state.y if state.loss != "squared" else state.targets
        runner = make_optimizer_runner(
            mdl, data, labels, state.loss_code, state.optimizer, state.optimizer_options
        )
    rule = STEP_RULE_CODES[state.step_rule]
    if state.runner_state is not None:
        runner.set_state(state.runner_state)
    scaled = getattr(runner, "scaled", False)
    rec_scale = state.row_scales()
    if checkpoint is not None:
        checkpoint = check_checkpoint_path(checkpoint, must_exist=False)
        if not checkpoint.parent.is_dir():
            raise FileNotFoundError(f"checkpoint folder {checkpoint.parent} does not exist")
        checkpoint_every = check_positive(checkpoint_every, "checkpoint_every")
    est_ns = (4.0 * N * d + 30.0 * N + 4.0 * theta.size + 50.0) * (
        {"float64": 1.0, "compensated": 3.0}.get(state.precision, 25.0)
    )
    chunk = max(1, int(chunk_seconds * 1e9 / est_ns))
    status = "completed"
    chunks, first_done = 0, state.done
    bar = ProgressBar(state.steps, enabled=progress)
    bar.update(state.done)
    start = time.perf_counter()
    last_save = start
    with InterruptFlag() as interrupt:
        while state.done < state.steps:
            n = min(chunk, state.steps - state.done)
            hi = int(np.searchsorted(state.sched, state.done + n, side="right"))
            lo = state.k_rec
            t0 = time.perf_counter()
            args = (theta, state.lr, rule, state.done, n, state.sched[lo:hi], state.rec[lo:hi])
            if scaled:
                code, fail_step = runner(*args, state.floor, state.scale, rec_scale[lo:hi])
            else:
                code, fail_step = runner(*args, state.floor)
            now = time.perf_counter()
            if code == STATUS_DIVERGED:
                bar.close()
                _raise_divergence(
                    mdl,
                    Z,
                    state.targets,
                    np.ldexp(theta, int(state.scale[0])),
                    d,
                    state.loss,
                    fail_step,
                    state.log_loss0,
                    state.lr,
                    state.safe_lr,
                )
            state.done += n
            state.k_rec = hi
            bar.update(state.done)
            chunks += 1
            if chunks == 2 and not progress:  # (the first chunk may include compilation)
                _warn_if_long(state, n, now - t0, first_done)
            if now > t0:
                chunk = max(1, int(n * chunk_seconds / (now - t0)))
            if interrupt.hit:
                status = "interrupted"
                break
            if checkpoint is not None and now - last_save >= checkpoint_every:
                state.elapsed += now - start
                start = now
                _save(checkpoint, state, runner)
                last_save = time.perf_counter()
    bar.close()
    state.elapsed += time.perf_counter() - start
    if not np.all(np.isfinite(theta)):
        advice, suggested = lr_advice(state.lr, state.safe_lr)
        raise DivergenceError(
            f"the parameters became non-finite by step {state.done}; {advice}.",
            step=state.done,
            suggested_lr=suggested,
        )
    if checkpoint is not None:
        _save(checkpoint, state, runner)
    return _finish(state, status)


def _save(path, state, runner) -> None:
    get_state = getattr(runner, "get_state", None)
    state.runner_state = get_state() if get_state is not None else None
    save_checkpoint(path, state)


def _finish(state, status: str) -> Run:
    """The Run (history derived from the recorded rows) of a state after ``done`` steps."""
    mdl, theta, done, k_rec = state.model, state.theta, state.done, state.k_rec
    d = state.X.shape[1]
    rec_steps = state.sched[:k_rec]
    rec_theta = state.rec[:k_rec]
    rec_scale = state.row_scales()[:k_rec]
    if done > 0 and (k_rec == 0 or rec_steps[-1] != done):
        rec_steps = np.append(rec_steps, done)
        rec_theta = np.vstack([rec_theta, theta[None, :]])
        rec_scale = np.append(rec_scale, state.scale[0])
    meta = dict(state.settings)
    if state.ref_vec is not None:
        meta["reference_norm"] = float(vector_norm(state.ref_vec))
    if not getattr(mdl, "linear_predictor", True):
        return _finish_network(state, status, rec_steps, rec_theta, rec_scale, meta)
    history = build_history(
        rec_steps, rec_theta, mdl, d, state.Z, state.targets, state.loss, state.ref_vec,
        state.w_tilde, meta, theta_scale=rec_scale,
    )  # fmt: skip
    status = _frozen(status, state, rec_steps, rec_theta, rec_scale, history)
    if state.loss != "squared" and not isinstance(mdl, (Linear, FullyConnected)):
        warn_if_not_separable(state.X, state.y, history, stacklevel=4)  # (Linear, FC: at start)
    e = int(state.scale[0])
    scaled = [
        np.array(p, dtype=np.float64) if state.precision == "float64" else p.copy()
        for p in mdl.unflatten(theta, d)
    ]
    with np.errstate(over="ignore"):
        params = [np.ldexp(p, e) for p in scaled] if e else scaled
        coef = mdl.predictor(scaled)
        if e:
            coef = np.ldexp(coef, e * mdl.depth)
    return Run(
        coef=coef,
        params=params,
        history=history,
        status=status,
        steps_done=done,
        settings=dict(state.settings),
        reference=state.ref_obj,
        elapsed=state.elapsed,
        model=mdl,
        theta_scale=e,
        scaled_params=scaled,
    )


def _finish_network(state, status, rec_steps, rec_theta, rec_scale, meta) -> Run:
    mdl, e = state.model, int(state.scale[0])
    labels = state.targets if state.loss == "squared" else state.y
    history = build_network_history(
        rec_steps, rec_theta, mdl, state.X, labels, state.loss, meta, theta_scale=rec_scale
    )
    scaled = [np.array(p, dtype=np.float64) for p in mdl.unflatten(state.theta, state.X.shape[1])]
    with np.errstate(over="ignore"):
        params = [np.ldexp(p, e) for p in scaled] if e else scaled
    return Run(
        coef=None,
        params=params,
        history=history,
        status=status,
        steps_done=state.done,
        settings=dict(state.settings),
        reference=None,
        elapsed=state.elapsed,
        model=mdl,
        theta_scale=e,
        scaled_params=scaled,
    )


def resume(
    path: str | os.PathLike,
    steps: int | None = None,
    *,
    progress: bool = False,
    chunk_seconds: float = 0.5,
    checkpoint_every: float = 10.0,
) -> Run:
    """Continue a run from the checkpoint at ``path`` (written by ``train(checkpoint=path)``).

    ``steps`` more GD steps are taken (default: the rest of the original run). The result is
    bit-identical to an uninterrupted run of the same total length: same iterates, and the
    same history rows at the checkpoint steps both runs record. The checkpoint keeps being
    updated every ``checkpoint_every`` seconds, at Ctrl-C and at the end.
    """
    state = load_checkpoint(check_checkpoint_path(path, must_exist=True))
    if not isinstance(state, _RunState):
        raise ValueError(f"{path} does not hold a fastbias training run")
    if steps is not None:
        state.extend(check_positive_int(steps, "steps"))
    chunk_seconds = check_positive(chunk_seconds, "chunk_seconds")
    return _execute(state, progress, chunk_seconds, path, checkpoint_every)


def _raise_divergence(mdl, Z, targets, theta, d, loss, fail_step, log_loss0, lr, safe_lr):
    theta64 = np.asarray(theta, dtype=np.float64)
    ll = np.inf
    if np.all(np.isfinite(theta64)) and not getattr(mdl, "linear_predictor", True):
        ll = np.nan  # (the network's loss is reported by the kernel's divergence test)
    elif np.all(np.isfinite(theta64)):
        with np.errstate(all="ignore"):
            beta = mdl.predictor(mdl.unflatten(theta64, d))
            m = Z @ beta
            if loss == "squared":
                ll = float(np.log(0.5 * np.sum((m - targets) ** 2)))
            else:
                ll = log_total_loss(m, loss)
    advice, suggested = lr_advice(lr, safe_lr)
    what = (
        f"log-loss {ll:.4g} against {log_loss0:.4g} at the start"
        if not np.isnan(ll)
        else f"past the divergence test (log-loss {log_loss0:.4g} at the start)"
    )
    raise DivergenceError(
        f"the loss blew up at step {fail_step}: {what}; {advice}.",
        step=int(fail_step),
        suggested_lr=suggested,
    )


def _frozen(status, state, rec_steps, rec_theta, rec_scale, history) -> str:
    """A completed margin-loss run whose iterate stopped moving says so (and warns)."""
    if status != "completed" or state.loss == "squared":
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
        f"lr={state.lr:g} are exactly zero; step_rule='normalized' or 'loss-scaled' keeps the "
        "direction moving.",
        stacklevel=5,  # the caller of train / resume
    )
    return frozen


def _warn_if_long(state, n: int, seconds: float, first_done: int) -> None:
    """Say up front (after the second chunk) how long a long run without a bar will take."""
    if n <= 0 or seconds <= 0:
        return
    left = (state.steps - state.done) * seconds / n
    if left > LONG_RUN_SECONDS:
        warnings.warn(
            f"{state.steps - first_done:.3g} steps will take "
            f"{time_estimate_note(state.steps, left)} more at the measured "
            f"{1e9 * seconds / n:.3g} ns/step; Ctrl-C stops the run and returns it with every "
            "finished step (progress=True shows a progress bar).",
            stacklevel=4,  # the caller of train / resume
        )
