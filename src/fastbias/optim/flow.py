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

from typing import Any

from ..models import Model
from .driver import execute
from .history import Run
from .results import FlowHistory
from .spec import build_spec

__all__ = ["flow", "FlowHistory"]


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
    spec = build_spec(
        X,
        y,
        model=model,
        loss=loss,
        init=init,
        init_scale=init_scale,
        seed=seed,
        record=record,
        reference=reference,
        optimizer="flow",
        optimizer_options={"rtol": rtol, "atol": atol, "max_steps": max_steps},
        t_max=t_max,
        log_t_max=log_t_max,
    )
    return execute(spec, progress=progress, chunk_seconds=chunk_seconds)
