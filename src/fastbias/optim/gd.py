"""Gradient descent and its variants: :func:`train` and :func:`resume`.

Both are thin: ``train`` builds a :class:`~fastbias.optim.spec.RunSpec` (all validation) and
executes it (:func:`fastbias.optim.driver.execute`: the kernel of :mod:`fastbias.optim.planner`
in compiled chunks); ``resume`` reads a checkpoint's spec and state and executes the rest.
"""

from __future__ import annotations

import os
from typing import Any

from .._validation import check_checkpoint_path
from ..models import Model
from .driver import execute
from .history import Run
from .spec import RunSpec, build_spec, default_lr

__all__ = ["train", "resume", "default_lr"]


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
    spec = train_spec(
        X,
        y,
        model=model,
        loss=loss,
        steps=steps,
        lr=lr,
        init=init,
        init_scale=init_scale,
        seed=seed,
        precision=precision,
        record=record,
        reference=reference,
        step_rule=step_rule,
        optimizer=optimizer,
        optimizer_options=optimizer_options,
    )
    return execute(
        spec,
        progress=progress,
        chunk_seconds=chunk_seconds,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )


def train_spec(X: Any, y: Any = None, **kwargs: Any) -> RunSpec:
    """:func:`~fastbias.optim.spec.build_spec` for the runs :func:`train` does (not gradient
    flow, not the multi-class model)."""
    if kwargs.get("optimizer") == "flow":
        raise ValueError("optimizer='flow' is gradient flow; call fastbias.flow(X, y, ...).")
    if kwargs.get("loss") == "cross-entropy":
        raise ValueError(
            "loss='cross-entropy' is the multi-class model; call "
            "fastbias.train_multiclass(X, labels, ...)."
        )
    return build_spec(X, y, **kwargs)


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
    from .checkpoint import load_checkpoint

    spec, state = load_checkpoint(check_checkpoint_path(path, must_exist=True))
    if spec.optimizer == "flow" or spec.task == "multiclass":
        raise ValueError(f"{path} does not hold a fastbias training run")
    if steps is not None:
        spec = spec.continued(state.done, steps)
    return execute(
        spec,
        state,
        progress=progress,
        chunk_seconds=chunk_seconds,
        checkpoint=path,
        checkpoint_every=checkpoint_every,
    )
