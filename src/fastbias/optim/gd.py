"""The training engine: validation and dispatch in Python, whole chunks of steps in kernels.

A run of ``steps`` GD steps is executed by compiled kernels in as few calls as possible: one
call when the run is short, otherwise chunks of about ``chunk_seconds`` each, so that a progress
bar can be updated and Ctrl-C can stop the run between chunks without losing finished work.
Python never runs once per step.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from typing import Any

import numpy as np

from .._progress import ProgressBar
from .._validation import check_choice, check_positive, check_positive_int, check_vector, check_X_y
from ..exceptions import DivergenceError, FastbiasError, NotSeparableError
from ..kernels import STATUS_DIVERGED, STEP_RULE_CODES
from ..losses import get_loss, log_total_loss
from ..models import get_model
from .history import Run, build_history, checkpoint_steps

__all__ = ["train", "default_lr"]

PRECISIONS = ("float64", "extended")
_DIVERGENCE_FACTOR = 23.0  # stop when the loss exceeds its start by e**23 (~1e10)


def default_lr(Z: np.ndarray, w0: np.ndarray | None = None, loss: str = "exp") -> float:
    """A step size below ``2/beta`` at the starting point ``w0``.

    The logistic loss is ``sigma_max(Z)**2 / 4``-smooth everywhere: ``1/sigma_max**2``. The
    exponential loss has Hessian ``sum_n exp(-m_n) z_n z_n^T <= exp(-min_n m_n) Z^T Z``, so at
    ``w0`` the step ``exp(min(min_n m_n, 0)) / sigma_max**2`` is safe (``1/sigma_max**2`` at 0).
    """
    sigma = float(np.linalg.norm(Z, 2))
    if sigma == 0:
        raise ValueError("every sample is zero; there is nothing to train on.")
    lr = 1.0 / sigma**2
    if w0 is not None and get_loss(loss).code == 0:
        lr *= float(np.exp(min(float(np.min(Z @ w0)), 0.0)))
    return lr


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


def _resolve_reference(reference, X, y, lr, w0, step_rule):
    """Return (reference vector or None, reference object, w_tilde or None)."""
    from ..references import MaxMarginSolution, max_margin

    if reference is None or (isinstance(reference, str) and reference == "none"):
        return None, None, None
    if isinstance(reference, str):
        check_choice(reference, "reference", ["auto", "svm", "none"])
        try:
            sol = max_margin(X, y)
        except NotSeparableError:
            if reference == "svm":
                raise
            warnings.warn(
                "X, y are not linearly separable, so there is no max-margin reference; "
                "the history has no gap columns.",
                stacklevel=3,
            )
            return None, None, None
        reference = sol
    if isinstance(reference, MaxMarginSolution):
        w_tilde = None
        if step_rule == "fixed":
            try:
                w_tilde = reference.w_tilde(lr, w0)
            except ValueError:
                w_tilde = None  # Theorem 4 needs the support vectors to span the data
        return reference.coef, reference, w_tilde
    vec = check_vector(reference, X.shape[1], "reference")
    if not np.any(vec):
        raise ValueError("reference direction is the zero vector; pass a nonzero direction.")
    return vec, vec, None


def _kernel(precision: str):
    if precision == "float64":
        from ..kernels import _numba

        return _numba.gd_linear, np.float64
    from ..kernels import _c

    if not _c.available():
        raise FastbiasError(
            "precision='extended' needs the compiled C extension fastbias._cext, which is not "
            "importable here; reinstall fastbias with `pip install .` on a machine with a C "
            "compiler."
        )
    return _c.gd_linear_extended, np.longdouble


class _InterruptFlag:
    """Turns Ctrl-C into a flag checked between chunks (main thread only)."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def train(
    X,
    y=None,
    *,
    model="linear",
    loss: str = "exp",
    steps: int = 1000,
    lr: float | None = None,
    init=None,
    precision: str = "float64",
    record: int | Any = 10,
    reference: Any = "auto",
    step_rule: str = "fixed",
    progress: bool = False,
    chunk_seconds: float = 0.5,
) -> Run:
    """Train by gradient descent, the whole run in compiled kernels (Soudry et al. eq. 2.2).

    Parameters
    ----------
    X : array of shape (N, d)
        Samples. ``y`` labels (-1/+1, any two-class coding, or None for all +1).
    model : str or Model
        ``"linear"`` (the predictor ``w`` itself).
    loss : {"exp", "logistic"}
        Margin loss; gradients are carried in log domain.
    steps : int
        Number of GD steps T.
    lr : float, optional
        Step size eta; default :func:`default_lr` (``1/sigma_max(Z)**2`` from ``w = 0``,
        with ``Z = diag(y) X``).
    init : array of shape (d,), optional
        ``w(0)``; default zero.
    precision : {"float64", "extended"}
        ``"extended"`` runs an 80-bit long double C kernel.
    record : int or array of int
        Checkpoints per decade (log-spaced, plus the last step), or explicit step numbers.
    reference : "auto", "svm", None, array or MaxMarginSolution
        What gaps are measured against; ``"auto"`` is the exact L2 max-margin solution when the
        data are separable (``"svm"`` insists on it).
    step_rule : {"fixed", "normalized", "loss-scaled"}
        ``eta_t = eta``, ``eta/||grad L||`` or ``eta/L``.
    progress : bool
        Show a progress bar with ETA on stderr, updated once per chunk.
    chunk_seconds : float
        Target wall time of one compiled call for long runs.

    Returns
    -------
    Run
        ``.coef``, ``.params``, ``.history`` (checkpointed diagnostics), ``.rates()``.

    Raises
    ------
    DivergenceError
        When the loss blows up (the step size is too large); names the step and a safe lr.
    """
    X, y = check_X_y(X, y)
    N, d = X.shape
    Z = X * y[:, None]
    mdl = get_model(model)
    lossobj = get_loss(loss)
    steps = check_positive_int(steps, "steps")
    check_choice(step_rule, "step_rule", list(STEP_RULE_CODES))
    check_choice(precision, "precision", PRECISIONS)
    chunk_seconds = check_positive(chunk_seconds, "chunk_seconds")
    w0 = np.zeros(d) if init is None else check_vector(init, d, "init")
    safe_lr = default_lr(Z, w0, lossobj.name)
    lr = safe_lr if lr is None else check_positive(lr, "lr")
    sched = _schedule(record, steps)
    ref_vec, ref_obj, w_tilde = _resolve_reference(reference, X, y, lr, w0, step_rule)

    log_loss0 = log_total_loss(Z @ w0, lossobj)
    if lossobj.code == 0:
        s_floor = -(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)
    else:
        s_floor = -np.exp(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)

    kernel, dtype = _kernel(precision)
    Zk = np.ascontiguousarray(Z, dtype=dtype)
    w = np.array(w0, dtype=dtype)
    rec = np.zeros((len(sched), d), dtype=dtype)
    rule = STEP_RULE_CODES[step_rule]

    est_ns = (2.0 * N * d + 30.0 * N + 50.0) * (1.0 if precision == "float64" else 25.0)
    chunk = max(1, int(chunk_seconds * 1e9 / est_ns))
    done, k_rec = 0, 0
    status = "completed"
    bar = ProgressBar(steps, enabled=progress)
    start = time.perf_counter()
    with _InterruptFlag() as interrupt:
        while done < steps:
            n = min(chunk, steps - done)
            hi = int(np.searchsorted(sched, done + n, side="right"))
            t0 = time.perf_counter()
            code, fail_step = kernel(
                Zk, w, lr, lossobj.code, rule, done, n, sched[k_rec:hi], rec[k_rec:hi], s_floor
            )
            elapsed = time.perf_counter() - t0
            if code == STATUS_DIVERGED:
                bar.close()
                _raise_divergence(Z, w, lossobj, fail_step, log_loss0, lr, safe_lr)
            done += n
            k_rec = hi
            bar.update(done)
            if elapsed > 0:
                chunk = max(1, int(n * chunk_seconds / elapsed))
            if interrupt.hit:
                status = "interrupted"
                break
    bar.close()
    total = time.perf_counter() - start

    rec_steps = sched[:k_rec]
    rec_w = rec[:k_rec]
    if done > 0 and (k_rec == 0 or rec_steps[-1] != done):
        rec_steps = np.append(rec_steps, done)
        rec_w = np.vstack([rec_w, w[None, :]])
    if not np.all(np.isfinite(w)):
        raise DivergenceError(
            f"the iterate became non-finite by step {done}; lr={lr:g} is too large. "
            f"Try lr <= {safe_lr:.3g}.",
            step=done,
            suggested_lr=safe_lr,
        )
    settings = {
        "model": mdl.name,
        "loss": lossobj.name,
        "lr": lr,
        "steps": steps,
        "precision": precision,
        "step_rule": step_rule,
        "init": w0,
    }
    meta = dict(settings)
    if ref_vec is not None:
        meta["reference_norm"] = float(np.linalg.norm(ref_vec))
    history = build_history(rec_steps, rec_w, Z, lossobj.name, ref_vec, w_tilde, meta)
    coef = np.array(w, dtype=np.float64) if precision == "float64" else w.copy()
    return Run(
        coef=coef,
        params=[coef],
        history=history,
        status=status,
        steps_done=done,
        settings=settings,
        reference=ref_obj,
        elapsed=total,
    )


def _raise_divergence(Z, w, lossobj, fail_step, log_loss0, lr, safe_lr):
    w64 = np.asarray(w, dtype=np.float64)
    with np.errstate(all="ignore"):
        ll = log_total_loss(Z @ w64, lossobj) if np.all(np.isfinite(w64)) else np.inf
    raise DivergenceError(
        f"the loss blew up at step {fail_step}: log-loss {ll:.4g} against {log_loss0:.4g} at the "
        f"start. lr={lr:g} is too large for this data and starting point; try lr <= {safe_lr:.3g} "
        f"(stable at the start, see fastbias.optim.gd.default_lr).",
        step=int(fail_step),
        suggested_lr=safe_lr,
    )
