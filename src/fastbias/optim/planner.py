"""Which compiled kernel runs a :class:`~fastbias.optim.spec.RunSpec`: the kernel table.

:func:`plan` goes down :data:`TABLE` and takes the first row whose columns all match the
spec (``"*"`` matches anything); the row's kernel is bound to the spec's data and wrapped in a
runner the driver (:mod:`fastbias.optim.driver`) advances chunk by chunk. The precisions each
model's own kernel has are in :data:`fastbias.models.registry.MODELS`; which combinations of
optimizer, step rule and precision are valid at all is checked by
:func:`~fastbias.optim.spec.build_spec` before a spec exists.

Runners: :class:`StepRunner` drives a kernel with the GD-runner contract of
:mod:`fastbias.models` (``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor
[, scale, rec_scale]) -> (status, fail_step)``); :class:`FlowRunner` drives the Dormand-Prince
integrator of gradient flow.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._warn import user_stacklevel
from ..exceptions import DivergenceError, SolverError
from ..kernels import STATUS_DIVERGED, STEP_RULE_CODES
from ..losses import log_total_loss
from ._outcome import LONG_RUN_SECONDS, lr_advice, time_estimate_note
from .spec import FLOW, RunSpec, flow_scaling

__all__ = ["TABLE", "Plan", "plan", "RunState", "StepRunner", "FlowRunner", "kernel_table"]

ANY = "*"

#: The kernel table: the first row that matches the spec runs it.
#:
#: * ``model``: the model's own GD kernel, ``Model.runner`` (C for the linear model, numba for
#:   the deep models, the long double C kernels for ``precision="extended"``);
#: * ``network``: ``Network.runner_xy``, for networks that are not linear predictors (a ReLU
#:   network sees X and y, not the rows ``y x``);
#: * ``optimizer``, ``backtracking``, ``flow``: one generic kernel each (``_numba_optim``,
#:   ``_numba_backtrack``, ``_numba_flow``) over the model's ``Model.gradient_data``;
#: * ``multiclass``: ``_numba_multiclass.gd_multiclass`` (softmax cross-entropy, linear).
#:
#: ``model`` column: ``"x,y"`` matches models that are not linear predictors.
TABLE: tuple[tuple[str, str, str, str, str, str], ...] = (
    # task          optimizer  step rule                   precision  model  kernel
    ("multiclass",  "gd",      ANY,                        "float64", ANY,   "multiclass"),
    (ANY,           FLOW,      ANY,                        "float64", ANY,   "flow"),
    (ANY,           "gd",      "loss-scaled-backtracking", "float64", ANY,   "backtracking"),
    (ANY,           "gd",      ANY,                        ANY,       "x,y", "network"),
    (ANY,           "gd",      ANY,                        ANY,       ANY,   "model"),
    (ANY,           ANY,       ANY,                        "float64", ANY,   "optimizer"),
)  # fmt: skip


@dataclass
class RunState:
    """The mutable part of a run: what the kernels advance and a checkpoint stores.

    Attributes
    ----------
    theta : ndarray
        The flat parameters in the spec's dtype; ``2**scale[0] * theta`` are the true ones.
    rec : ndarray (len(spec.schedule), n)
        Recorded rows (rows ``< k_rec`` are filled); row k is ``2**rec_scale[k]`` times the
        true parameters at ``spec.schedule[k]``.
    done : int
        Steps taken (gradient flow: Runge-Kutta steps, accepted and rejected).
    k_rec : int
        Rows of ``rec`` filled.
    scale, rec_scale : int64 arrays
        Power-of-two exponents of ``theta`` (length 1) and of the rows.
    elapsed : float
        Seconds spent running, over all sessions of the run.
    kernel_state : dict or None
        What the kernel keeps between calls (optimizer moments, compensation terms, spectra,
        the integrator state), as returned by the runner's ``get_state``.
    """

    theta: np.ndarray
    rec: np.ndarray
    scale: np.ndarray
    rec_scale: np.ndarray
    done: int = 0
    k_rec: int = 0
    elapsed: float = 0.0
    kernel_state: dict[str, Any] | None = None

    @classmethod
    def initial(cls, spec: RunSpec) -> RunState:
        """The state before the first step."""
        n_rec, n = len(spec.schedule), spec.theta0.size
        return cls(
            theta=np.array(spec.theta0, dtype=spec.dtype),
            rec=np.zeros((n_rec, n), dtype=spec.dtype),
            scale=np.zeros(1, dtype=np.int64),
            rec_scale=np.zeros(n_rec, dtype=np.int64),
        )

    def resized(self, spec: RunSpec) -> RunState:
        """This state with the recorded rows laid out for ``spec``'s schedule (a continued
        run: the filled rows are kept, the new ones are zero)."""
        n_rec = len(spec.schedule)
        if n_rec == len(self.rec):
            return self
        rec = np.zeros((n_rec, self.rec.shape[1]), dtype=self.rec.dtype)
        rec[: self.k_rec] = self.rec[: self.k_rec]
        rec_scale = np.zeros(n_rec, dtype=np.int64)
        rec_scale[: self.k_rec] = self.rec_scale[: self.k_rec]
        return RunState(
            self.theta, rec, self.scale, rec_scale, self.done, self.k_rec, self.elapsed,
            self.kernel_state,
        )  # fmt: skip


class StepRunner:
    """Drives a GD-contract kernel (``kernel(theta, lr, rule, step0, n_steps, rec_steps,
    rec_theta, floor[, scale, rec_scale])``) over a spec's steps, chunk by chunk.

    ``kernel.scaled`` says it takes the power-of-two ``scale`` arguments; ``kernel.get_state``
    and ``kernel.set_state`` carry what it keeps between calls through checkpoints.
    """

    def __init__(self, spec: RunSpec, kernel: Callable, name: str):
        self.spec = spec
        self.kernel = kernel
        self.name = name
        self.total = spec.steps
        self.status = "completed"
        self._scaled = bool(getattr(kernel, "scaled", False))
        self._schedule = np.array(spec.schedule)  # writable: kernels are compiled for that
        self._rule = STEP_RULE_CODES[spec.step_rule]

    def restore(self, state: RunState) -> None:
        """Give the kernel the state a checkpoint kept for it."""
        if state.kernel_state is not None:
            self.kernel.set_state(state.kernel_state)

    def kernel_state(self) -> dict[str, Any] | None:
        get_state = getattr(self.kernel, "get_state", None)
        return get_state() if get_state is not None else None

    def progress(self, state: RunState) -> int:
        return state.done

    def finished(self, state: RunState) -> bool:
        return state.done >= self.spec.steps

    def first_budget(self, chunk_seconds: float) -> int:
        """Steps in the first chunk, from a rough cost model (the next ones are timed)."""
        spec = self.spec
        est_ns = (4.0 * spec.N * spec.d + 30.0 * spec.N + 4.0 * spec.theta0.size + 50.0) * (
            {"float64": 1.0, "compensated": 3.0}.get(spec.precision, 25.0)
        )
        return max(1, int(chunk_seconds * 1e9 / est_ns))

    def next_budget(self, budget: int, did: int, seconds: float, chunk_seconds: float) -> int:
        return max(1, int(did * chunk_seconds / seconds)) if seconds > 0 else budget

    def advance(self, state: RunState, budget: int) -> int:
        """Run up to ``budget`` steps; returns the number taken. Raises DivergenceError."""
        spec = self.spec
        n = min(budget, spec.steps - state.done)
        hi = int(np.searchsorted(self._schedule, state.done + n, side="right"))
        lo = state.k_rec
        args = (state.theta, spec.lr, self._rule, state.done, n, self._schedule[lo:hi])
        if self._scaled:
            code, fail = self.kernel(
                *args, state.rec[lo:hi], spec.floor, state.scale, state.rec_scale[lo:hi]
            )
        else:
            code, fail = self.kernel(*args, state.rec[lo:hi], spec.floor)
        if code == STATUS_DIVERGED:
            _raise_divergence(spec, np.ldexp(state.theta, int(state.scale[0])), fail)
        state.done += n
        state.k_rec = hi
        return n

    def finalize(self, state: RunState) -> None:
        """Refuse a run whose parameters became non-finite without tripping the loss test."""
        if not np.isfinite(state.theta).all():
            advice, suggested = lr_advice(self.spec.lr, self.spec.safe_lr)
            raise DivergenceError(
                f"the parameters became non-finite by step {state.done}; {advice}.",
                step=state.done,
                suggested_lr=suggested,
            )

    def warn_if_long(self, state: RunState, did: int, seconds: float, first_done: int) -> None:
        """Say up front (after the second chunk, without a progress bar) how long a long run
        will take, and that Ctrl-C keeps what is done."""
        if did <= 0 or seconds <= 0:
            return
        steps = self.spec.steps
        left = (steps - state.done) * seconds / did
        if left > LONG_RUN_SECONDS:
            warnings.warn(
                f"{steps - first_done:.3g} steps will take "
                f"{time_estimate_note(steps, left)} more at the measured "
                f"{1e9 * seconds / did:.3g} ns/step; Ctrl-C stops the run and returns it with "
                "every finished step (progress=True shows a progress bar).",
                stacklevel=user_stacklevel(),
            )


def _raise_divergence(spec: RunSpec, theta: np.ndarray, fail_step: int) -> None:
    mdl, d = spec.model, spec.d
    theta64 = np.asarray(theta, dtype=np.float64)
    ll = np.inf
    advice, suggested = lr_advice(spec.lr, spec.safe_lr)
    if spec.task == "multiclass":
        raise DivergenceError(
            f"the cross-entropy blew up at step {fail_step}; {advice}.",
            step=int(fail_step),
            suggested_lr=suggested,
        )
    if np.all(np.isfinite(theta64)) and not spec.linear_predictor:
        ll = np.nan  # (the network's loss is reported by the kernel's divergence test)
    elif np.all(np.isfinite(theta64)):
        with np.errstate(all="ignore"):
            beta = mdl.predictor(mdl.unflatten(theta64, d))
            m = spec.Z @ beta
            if spec.loss == "squared":
                ll = float(np.log(0.5 * np.sum((m - spec.targets) ** 2)))
            else:
                ll = log_total_loss(m, spec.loss)
    what = (
        f"log-loss {ll:.4g} against {spec.log_loss0:.4g} at the start"
        if not np.isnan(ll)
        else f"past the divergence test (log-loss {spec.log_loss0:.4g} at the start)"
    )
    raise DivergenceError(
        f"the loss blew up at step {fail_step}: {what}; {advice}.",
        step=int(fail_step),
        suggested_lr=suggested,
    )


class FlowRunner:
    """Drives ``_numba_flow.integrate`` (gradient flow in ``s = log(1 + t)``) chunk by chunk.

    The integrator's own state (``s``, step size, controller memory, counters, the FSAL
    derivative) is ``state.kernel_state`` (``"state"``, ``"k1"``); ``state.done`` counts
    Runge-Kutta steps, accepted and rejected.
    """

    total = 1000  # progress in thousandths of the way in s
    progress_unit = "thousandths of log(1+t)"

    def __init__(self, spec: RunSpec, data: tuple, a_exp: int, lshift: float):
        from ..kernels import _numba_flow as nf

        self.spec = spec
        self.name = "flow"
        self.nf = nf
        self.data = data  # (kind, ZT, ints, offsets, pos, jidx, vals, net)
        self.targets = spec.kernel_arrays()[1] if data[0] == nf.KIND_NETWORK else spec.targets
        # data far from unit scale: the same path on X / 2**k, theta' = 2**a theta, in time
        # t' = 2**(2a) t (spec.flow_scaling); s = log(1 + t')
        self.a_exp, self.lshift = a_exp, lshift
        self.rec_s = np.logaddexp(0.0, spec.schedule + lshift)
        self.s_end = float(self.rec_s[-1])
        opts = spec.optimizer_options
        self.rtol, self.atol, self.max_steps = opts["rtol"], opts["atol"], opts["max_steps"]
        self.status: str | None = None

    def restore(self, state: RunState) -> None:
        if state.kernel_state is None:
            if self.a_exp:
                state.theta[...] = np.ldexp(state.theta, self.a_exp)
            state.kernel_state = {
                "state": np.zeros(self.nf.STATE_SIZE),
                "k1": np.zeros(state.theta.size),
            }

    def kernel_state(self) -> None:
        return None  # (kept in state.kernel_state itself)

    def t_at(self, s: float) -> float:
        """The caller's time ``t`` at the integrator's ``s = log(1 + t')``."""
        return _exp(float(log_t_of_s(s)) - self.lshift) if self.lshift else _t_of_s(s)

    def log_t_at(self, s: float) -> float:
        return float(log_t_of_s(s)) - self.lshift

    def warn_if_long(self, *args) -> None:
        pass

    def progress(self, state: RunState) -> int:
        s = state.kernel_state["state"][self.nf.ST_S]
        return int(1000 * s / self.s_end) if self.s_end > 0 else 1000

    def finished(self, state: RunState) -> bool:
        return self.status is not None

    def first_budget(self, chunk_seconds: float) -> int:
        return 256

    def next_budget(self, budget: int, did: int, seconds: float, chunk_seconds: float) -> int:
        if seconds > 0 and did > 0:
            return max(16, min(10 * budget, int(did * chunk_seconds / seconds)))
        return budget

    def advance(self, state: RunState, budget: int) -> int:
        nf = self.nf
        st = state.kernel_state["state"]
        budget = min(budget, self.max_steps - state.done)
        before = st[nf.ST_ACC] + st[nf.ST_REJ]
        kind, ZT, ints, offsets, pos, jidx, vals, net = self.data
        code = nf.integrate(
            kind, state.theta, st, state.kernel_state["k1"], self.s_end, self.rec_s, state.rec,
            self.rtol, self.atol, budget, ZT, self.targets, self.spec.loss_code, ints, offsets,
            pos, jidx, vals, net,
        )  # fmt: skip
        did = int(st[nf.ST_ACC] + st[nf.ST_REJ] - before)
        state.done += did
        state.k_rec = int(st[nf.ST_KREC])
        if code == nf.FLOW_BAD_START:
            raise SolverError(
                f"the gradient flow's velocity is not finite at t = {self.t_at(st[nf.ST_S]):.3g}: "
                "the loss or its gradient overflows float64 there (margins below about -700 "
                "for the exp loss). Start closer to the data scale (smaller init_scale) or use "
                "the logistic loss."
            )
        if code == nf.FLOW_UNDERFLOW:
            raise SolverError(
                f"the step size underflowed at t = {self.t_at(st[nf.ST_S]):.3g} "
                f"(log t = {self.log_t_at(st[nf.ST_S]):.6g}): the flow is too fast to "
                f"resolve in log-time there; loosen rtol={self.rtol:g} or rescale the data."
            )
        if code == nf.FLOW_DONE:
            self.status = "completed"
        elif code == nf.FLOW_STATIONARY:
            self.status = "converged"
        elif state.done >= self.max_steps:
            self.status = "max_steps"
            warnings.warn(
                f"stopped at max_steps={self.max_steps} at t = {self.t_at(st[nf.ST_S]):.3g} "
                f"(log t = {self.log_t_at(st[nf.ST_S]):.4g} of {self.spec.log_t_max:.4g}); "
                "raise max_steps or rtol.",
                stacklevel=user_stacklevel(),
            )
        return did

    def finalize(self, state: RunState) -> None:
        pass


def _exp(x: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _t_of_s(s: float) -> float:
    """``t = exp(s) - 1`` (``inf`` beyond the float64 range)."""
    with np.errstate(over="ignore"):
        return float(np.expm1(s))


def log_t_of_s(s: Any) -> np.ndarray:
    """``log t`` for ``s = log(1 + t)``, accurate for tiny and huge ``s``."""
    s = np.asarray(s, dtype=np.float64)
    return s + np.log(-np.expm1(-s))


# ---- the kernels of the table's last column ---------------------------------------------------


def _xy(spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """What a kernel sees: ``(X, labels or targets)`` for a model that is not a linear
    predictor, ``(Z, targets)`` otherwise."""
    if not spec.linear_predictor:
        return spec.kernel_arrays()
    return spec.Z, spec.targets


def _model_kernel(spec: RunSpec) -> StepRunner:
    kernel = spec.model.runner(spec.Z, spec.targets, spec.loss_code, spec.precision)
    return StepRunner(spec, kernel, "model")


def _network_kernel(spec: RunSpec) -> StepRunner:
    kernel = spec.model.runner_xy(*spec.kernel_arrays(), spec.loss_code, spec.precision)
    return StepRunner(spec, kernel, "network")


def _backtracking_kernel(spec: RunSpec) -> StepRunner:
    from .backtracking import backtracking_runner

    data, targets = _xy(spec)
    return StepRunner(
        spec, backtracking_runner(spec.model, data, targets, spec.loss_code), "backtracking"
    )


def _optimizer_kernel(spec: RunSpec) -> StepRunner:
    from .optimizers import make_optimizer_runner

    data, targets = _xy(spec)
    kernel = make_optimizer_runner(
        spec.model, data, targets, spec.loss_code, spec.optimizer, spec.optimizer_options
    )
    return StepRunner(spec, kernel, "optimizer")


def _multiclass_kernel(spec: RunSpec) -> StepRunner:
    from ..kernels._numba_multiclass import gd_multiclass

    X, codes = spec.kernel_arrays()
    d, K = spec.d, spec.classes.size

    def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, ceiling):
        return gd_multiclass(
            X, codes, theta.reshape(d, K), lr, rule, step0, n_steps, rec_steps, rec_theta,
            ceiling,
        )  # fmt: skip

    return StepRunner(spec, run, "multiclass")


def _flow_kernel(spec: RunSpec) -> FlowRunner:
    from ..models import Network
    from ..models.registry import gradient_data

    network = isinstance(spec.model, Network)  # a linear network too: the kernel sees X, y
    data = spec.kernel_arrays()[0] if network else spec.Z
    k, a_exp, lshift = flow_scaling(spec.X, spec.model.depth)
    return FlowRunner(
        spec, gradient_data(spec.model, np.ldexp(data, -k) if k else data), a_exp, lshift
    )


KERNELS: dict[str, Callable[[RunSpec], StepRunner | FlowRunner]] = {
    "model": _model_kernel,
    "network": _network_kernel,
    "backtracking": _backtracking_kernel,
    "optimizer": _optimizer_kernel,
    "multiclass": _multiclass_kernel,
    "flow": _flow_kernel,
}


@dataclass(frozen=True)
class Plan:
    """A spec's kernel: the table row that matched, and the runner bound to the data."""

    kernel: str
    row: int
    runner: StepRunner | FlowRunner


def _matches(spec: RunSpec, row: tuple[str, ...]) -> bool:
    task, optimizer, rule, precision, model, _ = row
    return (
        (task == ANY or task == spec.task)
        and (optimizer == ANY or optimizer == spec.optimizer)
        and (rule == ANY or rule == spec.step_rule)
        and (precision == ANY or precision == spec.precision)
        and (model == ANY or (model == "x,y" and not spec.linear_predictor))
    )


_CHOSEN: dict[tuple, tuple[tuple, int]] = {}


def choose(spec: RunSpec) -> int:
    """The index of the first :data:`TABLE` row that matches ``spec`` (remembered per
    combination of the columns the rows test, for the table it was found in)."""
    key = (spec.task, spec.optimizer, spec.step_rule, spec.precision, spec.linear_predictor)
    hit = _CHOSEN.get(key)
    if hit is not None and hit[0] is TABLE:
        return hit[1]
    i = _choose(spec)
    _CHOSEN[key] = (TABLE, i)
    return i


def _choose(spec: RunSpec) -> int:
    for i, row in enumerate(TABLE):
        if _matches(spec, row):
            return i
    raise ValueError(f"no compiled kernel runs {spec!r}")  # build_spec prevents this


def plan(spec: RunSpec) -> Plan:
    """The kernel that runs ``spec`` (the first matching row of :data:`TABLE`), bound to the
    spec's data and ready for :func:`fastbias.optim.driver.execute`."""
    i = choose(spec)
    kernel = TABLE[i][-1]
    return Plan(kernel, i, KERNELS[kernel](spec))


def kernel_table() -> str:
    """:data:`TABLE` as text (for the documentation and ``repr``)."""
    head = ("task", "optimizer", "step rule", "precision", "model", "kernel")
    rows = [head, *TABLE]
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
