"""A run, described once: the frozen, validated :class:`RunSpec` and :func:`build_spec`.

Every public training function (:func:`fastbias.train`, :func:`fastbias.train_batch`,
:func:`fastbias.flow`, :func:`fastbias.train_multiclass`, :func:`fastbias.resume`) is

    spec = build_spec(...)           # all validation, defaults resolved, reference solved
    plan(spec)                       # which compiled kernel runs it (fastbias.optim.planner)
    execute(spec)                    # chunks, progress, Ctrl-C, checkpoints (optim.driver)

A spec holds the data, the model, the loss, the optimizer and its options, the step rule and
step size, the precision, the horizon, the recording schedule, the initial parameters and the
reference the gaps are measured against. It is immutable (its arrays are read-only copies),
picklable and small (the data plus a few vectors), so it can be shipped to worker processes,
and it is what a checkpoint stores next to the kernel state.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import (
    ScaleOutOfRangeError,
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
from .._warn import warn_user
from ..diagnostics import norm as vector_norm
from ..kernels import STEP_RULE_CODES
from ..losses import get_loss, log_total_loss
from ..models import (
    Convolutional,
    Diagonal,
    FullyConnected,
    Linear,
    LowRank,
    Model,
    Network,
    Tensor,
    get_model,
)
from ..models.registry import model_entry, models_with_precision
from .history import checkpoint_steps
from .optimizers import check_optimizer, default_optimizer_lr
from .reference import (
    data_key,
    flow_reference,
    l1_reference,
    resolve_reference,
    solve_once,
)

__all__ = ["RunSpec", "build_spec", "default_lr", "PRECISIONS", "LOSSES"]

PRECISIONS = ("float64", "extended", "compensated")
LOSSES = ("exp", "exponential", "logistic", "squared")
MULTICLASS_LOSS = "cross-entropy"
MULTICLASS_RULES = ("fixed", "normalized", "loss-scaled")
FLOW = "flow"
FLOW_OPTIONS = {"rtol": 1e-8, "atol": 1e-12, "max_steps": 1_000_000}
_RTOL_RANGE = (1e-13, 0.1)
_DIVERGENCE_FACTOR = 23.0  # stop when the loss exceeds its start by e**23 (~1e10)
_LN10 = math.log(10.0)


@dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class RunSpec:
    """Everything that defines a run, validated (built by :func:`build_spec`).

    Attributes
    ----------
    X : ndarray (N, d)
        Samples (read-only float64).
    y : ndarray (N,)
        Labels in {-1, +1} (classification), real targets (``loss="squared"``) or class codes
        ``0..K-1`` (``loss="cross-entropy"``, see ``classes``).
    model : Model
    loss : {"exp", "logistic", "squared", "cross-entropy"}
    theta0 : ndarray
        The initial flat parameters (``W0.ravel()`` for the multi-class model).
    optimizer : str
        ``"gd"``, ``"momentum"``, ``"sgd"``, ``"adam"``, ``"adagrad"``, ``"coordinate"`` or
        ``"flow"`` (gradient flow, the ``eta -> 0`` limit).
    options : tuple of (name, value)
        The optimizer's validated options (``optimizer_options`` gives them as a dict).
    step_rule : str
        ``"fixed"``, ``"normalized"``, ``"loss-scaled"`` or ``"loss-scaled-backtracking"``.
    lr, safe_lr : float
        The step size, and the step size the divergence message suggests.
    precision : {"float64", "compensated", "extended"}
    steps : int
        The horizon in steps (0 for gradient flow, whose horizon is ``log_t_max``).
    record : int or ndarray
        The recording request as given (points per decade, or explicit steps / times).
    schedule : ndarray
        The recording steps (int64, increasing, ending at ``steps``); for gradient flow the
        recording log-times ``log t`` (ending at ``log_t_max``).
    reference, reference_vec, w_tilde
        What the gaps are measured against (the object ``Run.reference`` returns, its
        direction vector, and Theorem 4's ``w_tilde`` when it applies), or None.
    floor, log_loss0 : float
        The divergence test's bound and the initial log-loss it is measured against.
    init_scale, seed
        The initialization's scale and seed (for the record).
    log_t_max, t_max, schedule_t
        Gradient flow: the final time (``log t``; ``t`` when given as a float) and the
        recording times ``t`` (exact where given, ``inf`` beyond float64).
    classes : ndarray or None
        The sorted labels of a multi-class run (``y`` holds indices into it).
    """

    X: np.ndarray
    y: np.ndarray
    model: Model
    loss: str
    theta0: np.ndarray
    optimizer: str = "gd"
    options: tuple[tuple[str, Any], ...] = ()
    step_rule: str = "fixed"
    lr: float = 1.0
    safe_lr: float = 1.0
    precision: str = "float64"
    steps: int = 0
    record: Any = 10
    schedule: np.ndarray
    reference: Any = None
    reference_vec: np.ndarray | None = None
    w_tilde: np.ndarray | None = None
    floor: float = -math.inf
    log_loss0: float = 0.0
    init_scale: float = 1.0
    seed: int | None = 0
    log_t_max: float | None = None
    t_max: float | None = None
    schedule_t: np.ndarray | None = None
    classes: np.ndarray | None = None

    # ---- derived ----------------------------------------------------------------------------
    @property
    def task(self) -> str:
        """``"classification"``, ``"regression"`` or ``"multiclass"``."""
        if self.loss == MULTICLASS_LOSS:
            return "multiclass"
        return "regression" if self.loss == "squared" else "classification"

    @property
    def loss_code(self) -> int:
        """The kernels' loss code (0 exp, 1 logistic, 2 squared; -1 cross-entropy)."""
        return {"exp": 0, "logistic": 1, "squared": 2}.get(self.loss, -1)

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def dtype(self) -> type:
        """The parameters' dtype: ``np.longdouble`` for ``precision="extended"``."""
        return np.longdouble if self.precision == "extended" else np.float64

    @property
    def optimizer_options(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def linear_predictor(self) -> bool:
        """Whether the model is a linear predictor ``x -> x.beta`` (not a ReLU network)."""
        return bool(getattr(self.model, "linear_predictor", True))

    @property
    def Z(self) -> np.ndarray:
        """What the linear-predictor kernels see: ``y x`` rows (classification) or ``X``.

        A new writable array on each access: not kept (many specs of a sweep share one
        ``X``), and writable because compiled kernels are specialized (and cached) for
        writable arrays."""
        if self.task == "classification":
            return self.X * self.y[:, None]
        return np.array(self.X)

    @functools.cached_property
    def data_key(self) -> bytes:
        """The digest of ``(X, y)`` that exact solutions are cached by
        (:func:`fastbias.optim.reference.data_key`; computed once per spec)."""
        return data_key(self.X, self.y)

    @property
    def targets(self) -> np.ndarray:
        """The kernels' targets: regression targets, zeros (classification), class codes (a
        new writable array on each access, as :attr:`Z`)."""
        if self.task == "classification":
            return np.zeros(self.N)
        return np.array(self.y)

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Writable copies of ``(X, y)`` for kernels that see the inputs and labels."""
        return np.array(self.X), np.array(self.y)

    @property
    def settings(self) -> dict[str, Any]:
        """The settings a run reports (``Run.settings``): a new dict each time."""
        if self.task == "multiclass":
            return {"lr": self.lr, "steps": self.steps, "step_rule": self.step_rule}
        if self.optimizer == FLOW:
            opts = self.optimizer_options
            return {
                "model": repr(self.model),
                "loss": self.loss,
                "t_max": _exp(self.log_t_max) if self.t_max is None else self.t_max,
                "log_t_max": self.log_t_max,
                "method": "dopri5 in s = log(1 + t)",
                "rtol": opts["rtol"],
                "atol": opts["atol"],
                "init_scale": self.init_scale,
                "seed": self.seed,
            }
        out = {
            "model": repr(self.model),
            "depth": self.model.depth,
            "loss": self.loss,
            "lr": self.lr,
            "steps": self.steps,
            "precision": self.precision,
            "step_rule": self.step_rule,
            "init_scale": self.init_scale,
            "seed": self.seed,
            "optimizer": self.optimizer,
        }
        if self.optimizer != "gd":
            out["optimizer_options"] = self.optimizer_options
        return out

    # ---- changes -----------------------------------------------------------------------------
    def continued(self, done: int, more: int) -> RunSpec:
        """The spec of the same run taken to ``done + more`` steps after ``done`` were taken:
        the recording steps up to ``done`` are kept, those of the longer horizon follow."""
        if self.optimizer == FLOW:
            raise ValueError("a gradient-flow run has a time horizon; it cannot be continued.")
        more = check_positive_int(more, "steps")
        total = int(done) + more
        kept = self.schedule[self.schedule <= done]
        ahead = _schedule(self.record, total)
        ahead = ahead[ahead > done]
        return dataclasses.replace(
            self, steps=total, schedule=_frozen(np.concatenate([kept, ahead]).astype(np.int64))
        )

    def __repr__(self) -> str:
        horizon = (
            f"log_t_max={self.log_t_max:.6g}" if self.optimizer == FLOW else f"steps={self.steps}"
        )
        return (
            f"RunSpec(model={self.model!r}, loss={self.loss!r}, optimizer={self.optimizer!r}, "
            f"step_rule={self.step_rule!r}, lr={self.lr:.6g}, precision={self.precision!r}, "
            f"{horizon}, N={self.N}, d={self.d})"
        )


# ---- helpers ----------------------------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _own(a: np.ndarray, given: Any) -> np.ndarray:
    """``a`` as a read-only array that no one can change: shared when it is read-only and owns
    its memory (another spec's, or a frozen one the caller passes), else a frozen copy when
    it may share memory with the caller's ``given`` or another array."""
    if not a.flags.writeable and a.base is None and a.flags.owndata:
        return a
    if (isinstance(given, np.ndarray) and np.may_share_memory(a, given)) or a.base is not None:
        a = a.copy()
    elif not a.flags.writeable:
        a = a.copy()
    return _frozen(a)


_DATA_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, bytes]] = OrderedDict()
_DATA_CACHE_SIZE = 16
_DATA_CACHE_BYTES = 1 << 20  # larger data sets are validated on every call (and not kept)
_DATA_LOCK = threading.Lock()
# the entry of the last call (a sweep's every call after the first): compared before the
# cache is looked up, which hashes the key's bytes (one tuple, replaced atomically)
_DATA_LAST: list[tuple[tuple, tuple[np.ndarray, np.ndarray, bytes]] | None] = [None]


def _checked_data(X: Any, y: Any, regression: bool) -> tuple[np.ndarray, np.ndarray, bytes]:
    """``(X, y, key)``: the validated, read-only data (``check_X_y`` / ``check_X_targets``,
    then :func:`_own`) and their :func:`~fastbias.optim.reference.data_key` (what exact
    solutions are cached by).

    Sweeps call ``train`` many times on one data set: when ``X`` is a C-contiguous float64
    array of at most 1 MiB and ``y`` None or a numeric array, the result is cached by the
    arrays' contents *as given* (shape, dtype and bytes, compared exactly: no digest), so a
    repeated call copies the bytes once instead of checking, encoding, copying and hashing
    the data again (4 us against 30-80 us for N=40, d=16). An array changed in place has
    other bytes and is validated anew. The last 16 data sets are kept (read-only arrays the
    specs share; never the caller's own arrays); the last one is compared first, without
    hashing the bytes."""
    raw = None
    if (
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and X.nbytes <= _DATA_CACHE_BYTES
        and (y is None or (type(y) is np.ndarray and y.dtype.kind in "iuf"))
    ):
        raw = (
            regression,
            X.shape,
            X.tobytes(),
            None if y is None else (y.dtype.str, y.shape, y.tobytes()),
        )
        last = _DATA_LAST[0]
        if last is not None and last[0] == raw:  # (memcmp of the bytes, no hash: ~1 us)
            return last[1]
        with _DATA_LOCK:
            hit = _DATA_CACHE.get(raw)  # (hashes the bytes: ~3 us for N=40, d=16)
            if hit is not None:
                _DATA_CACHE.move_to_end(raw)
                _DATA_LAST[0] = (raw, hit)
                return hit
    X_in, y_in = X, y
    X, y = check_X_targets(X, y) if regression else check_X_y(X, y)
    X, y = _own(X, X_in), _own(y, y_in)
    out = (X, y, data_key(X, y))
    if raw is not None and X is not X_in and y is not y_in:  # (not arrays the caller holds)
        with _DATA_LOCK:
            _DATA_CACHE[raw] = out
            while len(_DATA_CACHE) > _DATA_CACHE_SIZE:
                _DATA_CACHE.popitem(last=False)
            _DATA_LAST[0] = (raw, out)
    return out


def _exp(x: float) -> float:
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def log_sigma(Z: np.ndarray, key: bytes | None = None) -> float:
    """``log sigma_max(Z)`` at any scale of ``Z`` (``_validation.log_sigma_max``), computed once
    per data set (``key``: the digest of the data ``Z`` comes from; ``sigma_max(y x) =
    sigma_max(x)`` for labels +-1)."""
    if key is None:
        return log_sigma_max(Z)
    return solve_once(("log_sigma_max", key), lambda: log_sigma_max(Z))


def default_lr(
    Z: np.ndarray, w0: np.ndarray | None = None, loss: str = "exp", *, key: bytes | None = None
) -> float:
    """A step size below ``2/beta`` at the starting point ``w0`` of the linear model.

    The logistic loss is ``sigma_max(Z)**2 / 4``-smooth everywhere: ``1/sigma_max**2``. The
    exponential loss has Hessian ``sum_n exp(-m_n) z_n z_n^T <= exp(-min_n m_n) Z^T Z``, so at
    ``w0`` the step ``exp(min(min_n m_n, 0)) / sigma_max**2`` is safe (``1/sigma_max**2`` at 0).
    The squared loss is ``sigma_max**2``-smooth: ``1/sigma_max**2``.
    """
    log_lr = -2.0 * log_sigma(Z, key)
    if w0 is not None and loss in ("exp", "exponential"):
        log_lr += min(float((Z @ w0).min()), 0.0)
    return representable_lr(log_lr, "1/sigma_max(X)**2")


def _deep_default_lr(
    Z: np.ndarray,
    theta0: np.ndarray,
    margins0: np.ndarray,
    depth: int,
    lossname: str,
    key: bytes | None = None,
) -> float:
    """A heuristic safe step for a depth-L model: the linear one (with the exp loss's
    ``exp(-min margin)`` factor at the initial margins) divided by the size of the other
    layers' product (the Hessian of ``f`` scales like ``||theta||^(2(L-1))``)."""
    log_lr = -2.0 * log_sigma(Z, key) - np.log(float(depth))  # (a float: the fast scalar path)
    if lossname in ("exp", "exponential"):
        log_lr += min(float(margins0.min()), 0.0)
    theta_norm = float(vector_norm(theta0))
    if theta_norm > 1.0:
        log_lr -= 2 * (depth - 1) * np.log(theta_norm)
    return representable_lr(log_lr, "1/(L sigma_max(X)**2 ||theta0||**(2(L-1)))")


def _schedule(record: Any, steps: int) -> np.ndarray:
    """The recording steps: ``record`` per decade (log-spaced, plus ``steps``) or the given
    steps plus ``steps`` (read-only)."""
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        return _log_schedule(int(steps), int(record))
    sched = np.unique(np.asarray(record, dtype=np.int64).ravel())
    if sched.size == 0 or sched[0] < 1 or sched[-1] > steps:
        raise ValueError(
            f"record steps must lie in [1, steps={steps}]; got range "
            f"[{sched.min() if sched.size else '-'}, {sched.max() if sched.size else '-'}]."
        )
    return np.unique(np.concatenate([sched, [steps]])).astype(np.int64)


@functools.lru_cache(maxsize=128)
def _log_schedule(steps: int, per_decade: int) -> np.ndarray:
    return _frozen(checkpoint_steps(steps, per_decade))


_MAX_RECORDS = 10**7  # recorded points of one gradient-flow run (each holds the parameters)


def _time_grid(
    record: Any, log_t_end: float, t_max_given: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Increasing recording times ``(log t, t)`` of gradient flow, ending at the final time.

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
        n_points = (end10 - lo) * per_decade
        if n_points > _MAX_RECORDS:
            raise ValueError(
                f"record={per_decade} points per decade up to log t = {log_t_end:.6g} is "
                f"{n_points:.3g} recorded points (at most {_MAX_RECORDS:.0e}); pass a smaller "
                "record or explicit record times."
            )
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


# ---- the starting point -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Start:
    """What a run's starting point determines: the sufficient convergence condition (deep
    models; None otherwise), the safe step size, and the divergence test's initial log-loss
    and bound."""

    condition: Any
    safe_lr: float
    log_loss0: float
    floor: float


_START_CACHE: OrderedDict[tuple, _Start] = OrderedDict()
_START_CACHE_SIZE = 64
_START_KEY_BYTES = 1 << 18  # larger thetas and model arrays are not keys (kept: 64 x 256 KiB)
# the models whose map P is determined by their type and config() (their constructor
# arguments); a subclass may hold more, so its starts are not kept
_CONFIG_MODELS = (Linear, FullyConnected, Diagonal, Convolutional, Tensor, LowRank, Network)


def _frozen_config(value: Any) -> Any:
    """``value`` (a model's config: numbers, strings, lists, dicts, arrays, models) as a
    hashable key, arrays by dtype, shape and bytes; TypeError for anything else."""
    if isinstance(value, np.ndarray):
        if value.nbytes > _START_KEY_BYTES:
            raise TypeError("an array too large to key by")
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, dict):
        return ("dict", tuple((k, _frozen_config(v)) for k, v in sorted(value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_frozen_config(v) for v in value))
    if isinstance(value, Model):
        return _model_key(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"no key for a {type(value).__name__}")


def _model_key(mdl: Model) -> tuple:
    """The model's type and constructor arguments (TypeError for other model classes)."""
    if type(mdl) not in _CONFIG_MODELS:
        raise TypeError(f"{type(mdl).__name__} is not keyed by its config")
    return (type(mdl), _frozen_config(mdl.config()))


def _condition(mdl: Model, params0: list[np.ndarray], regression: bool) -> Any:
    """Yun et al.'s sufficient convergence condition at ``params0`` (deep models), or None."""
    if mdl.depth > 1:
        return mdl.convergence_condition(params0, "regression" if regression else "classification")
    return None


def _warn_condition(cond: Any) -> None:
    if cond is not None and not cond.holds:
        warn_user(
            f"the initialization does not satisfy the sufficient convergence condition of "
            f"{cond.theorem} (lambda = {cond.margin:.3g} <= 0); the loss may not go to zero."
        )


def _start(
    mdl: Model,
    params0: list[np.ndarray],
    theta0: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    key: bytes,
    loss: str,
    regression: bool,
    init_scale: float,
) -> tuple[_Start, ScaleOutOfRangeError | None]:
    """The run's :class:`_Start` (warning when the convergence condition fails) and the
    ScaleOutOfRangeError of a default step size that does not fit float64 (then
    ``safe_lr`` is NaN), or None. Raises as ``check_initial_outputs`` for initial outputs
    out of range.

    The start depends on the model's map, ``theta0``, the data and the loss only, so the
    last 64 are kept by those: the model's type and constructor arguments, ``theta0``'s
    bytes, the data's digest ``key`` and the loss (not those with an error, nor those whose
    theta0 or model arrays pass 256 KiB). Runs
    from one starting point (sweeps over step sizes, horizons, step rules, record schedules)
    compute the initial outputs, the condition, the safe step and the initial loss once."""
    try:
        if theta0.nbytes > _START_KEY_BYTES:
            raise TypeError("theta0 too large to key by")
        cache_key: tuple | None = (_model_key(mdl), X.shape, theta0.dtype.str, theta0.tobytes())
        cache_key += (key, loss, regression)
    except TypeError:  # (not kept)
        cache_key = None
    if cache_key is not None:
        with _DATA_LOCK:
            kept = _START_CACHE.get(cache_key)
            if kept is not None:
                _START_CACHE.move_to_end(cache_key)
        if kept is not None:
            _warn_condition(kept.condition)
            return kept, None
    outputs0 = check_initial_outputs(mdl, params0, X, init_scale)  # X beta, or the network's
    cond = _condition(mdl, params0, regression)
    _warn_condition(cond)
    Z = X if regression else X * y[:, None]
    margins0 = outputs0 - y if regression else y * outputs0
    error = None
    try:
        if isinstance(mdl, Linear):
            safe_lr = default_lr(Z, theta0, loss, key=key)
        else:
            safe_lr = _deep_default_lr(Z, theta0, margins0, mdl.depth, loss, key)
    except ScaleOutOfRangeError as exc:
        safe_lr, error = float("nan"), exc
    if regression:
        loss0 = 0.5 * float(np.sum(margins0**2))
        log_loss0 = np.log(loss0) if loss0 > 0 else -np.inf
        floor = -max(loss0, 1.0) * np.exp(_DIVERGENCE_FACTOR)
    else:
        log_loss0 = log_total_loss(margins0, loss)
        if loss == "exp":
            floor = -(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)
        else:
            floor = -np.exp(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)
    out = _Start(cond, float(safe_lr), float(log_loss0), float(floor))
    if cache_key is not None and error is None:
        with _DATA_LOCK:
            _START_CACHE[cache_key] = out
            while len(_START_CACHE) > _START_CACHE_SIZE:
                _START_CACHE.popitem(last=False)
    return out, error


# ---- the builder ------------------------------------------------------------------------------


def build_spec(
    X: Any,
    y: Any = None,
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
    optimizer: str = "gd",
    optimizer_options: dict[str, Any] | None = None,
    t_max: float = 1e300,
    log_t_max: float | None = None,
) -> RunSpec:
    """Validate a run's description and resolve its defaults: the one place that does.

    The arguments are those of :func:`fastbias.train` (see there), plus:

    * ``optimizer="flow"``: gradient flow (:func:`fastbias.flow`), with the horizon
      ``t_max`` or ``log_t_max`` instead of ``steps``, options ``rtol``, ``atol`` and
      ``max_steps``, and ``record`` per decade of ``t`` or explicit times;
    * ``loss="cross-entropy"``: the multi-class linear model of
      :func:`fastbias.train_multiclass` (``y`` holds any K >= 2 labels, ``init`` is ``W0`` of
      shape (d, K)).

    Returns
    -------
    RunSpec

    Raises
    ------
    ValueError
        Naming the argument and the problem; :class:`~fastbias.NotSeparableError` for
        ``reference="svm"`` (or gradient flow with a margin loss) on non-separable data.
    """
    if loss == MULTICLASS_LOSS:
        return _multiclass_spec(X, y, steps, lr, init, step_rule, record)
    check_choice(loss, "loss", LOSSES)
    regression = loss == "squared"
    if not regression:
        loss = get_loss(loss).name
    X, y, key = _checked_data(X, y, regression)
    N, d = X.shape
    mdl = get_model(model)
    mdl.shapes(d)  # validates the architecture against d
    flow = optimizer == FLOW
    if flow:
        log_t_end, t_given = _flow_horizon(t_max, log_t_max)
        opts = _flow_options(optimizer_options)
        steps = 0
    else:
        steps = check_positive_int(steps, "steps")
        check_choice(step_rule, "step_rule", list(STEP_RULE_CODES))
        check_choice(precision, "precision", PRECISIONS)
        _check_precision(mdl, precision, loss)
        if optimizer == "sgd":
            optimizer_options = {"seed": 0 if seed is None else seed, **(optimizer_options or {})}
        opts = check_optimizer(
            optimizer, optimizer_options, step_rule=step_rule, model=mdl, n_samples=N
        )
        if optimizer != "gd" and precision != "float64":
            raise ValueError(f"optimizer={optimizer!r} runs in precision='float64' only.")
        if step_rule == "loss-scaled-backtracking" and (
            optimizer != "gd" or precision != "float64"
        ):
            raise ValueError(
                "step_rule='loss-scaled-backtracking' is a GD rule in float64; got "
                f"optimizer={optimizer!r}, precision={precision!r}."
            )
    init_scale = check_positive(init_scale, "init_scale")

    # ---- initialization
    if isinstance(mdl, Linear) and init is not None and not isinstance(init, str):
        arr = np.asarray(init, dtype=np.float64)
        init = [check_vector(arr[0] if arr.ndim == 2 and arr.shape[0] == 1 else arr, d, "init")]
    params0 = mdl.init_params(d, init, init_scale, seed)
    theta0 = mdl.flatten(params0)
    linear_predictor = getattr(mdl, "linear_predictor", True)
    if flow:
        check_initial_outputs(mdl, params0, X, init_scale)
        _warn_condition(_condition(mdl, params0, regression))
        Z = X if regression else X * y[:, None]
        return _flow_spec(
            X, y, mdl, loss, theta0, opts, log_t_end, t_given, record, reference, init_scale,
            seed, linear_predictor, Z, key,
        )  # fmt: skip

    # ---- step size (and the divergence test's start)
    start, lr_error = _start(mdl, params0, theta0, X, y, key, loss, regression, init_scale)
    if lr_error is not None and lr is None:
        raise lr_error
    safe_lr = start.safe_lr  # (NaN after lr_error: the caller's lr is used)
    if lr is None:
        lr = default_optimizer_lr(optimizer, opts, safe_lr, N)
    else:
        lr = check_positive(lr, "lr")
    sched = _schedule(record, steps)

    # ---- reference
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
        reference = l1_reference(X, y, key) if not regression else None
    ref_vec, ref_obj, w_tilde = resolve_reference(
        reference,
        mdl,
        X,
        y,
        lr,
        theta0 if isinstance(mdl, Linear) and optimizer == "gd" else None,
        step_rule,
        regression,
        key,
    )

    # ---- divergence test
    floor, log_loss0 = start.floor, start.log_loss0
    spec = RunSpec(
        X=X,
        y=y,
        model=mdl,
        loss=loss,
        theta0=_frozen(np.array(theta0, dtype=np.float64)),
        optimizer=optimizer,
        options=tuple(opts.items()),
        step_rule=step_rule,
        lr=float(lr),
        safe_lr=float(safe_lr),
        precision=precision,
        steps=steps,
        record=_record_value(record),
        schedule=_frozen(sched),
        reference=ref_obj,
        reference_vec=ref_vec,
        w_tilde=w_tilde,
        floor=float(floor),
        log_loss0=float(log_loss0),
        init_scale=init_scale,
        seed=seed,
    )
    spec.__dict__["data_key"] = key  # (cached_property: already computed here)
    return spec


def _record_value(record: Any) -> Any:
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        return int(record)
    return _frozen(np.array(record).ravel())


def _check_precision(mdl: Model, precision: str, loss: str) -> None:
    entry = model_entry(mdl)
    if precision in entry.precisions and not (precision == "extended" and loss == "squared"):
        return
    names = models_with_precision(precision)
    listed = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    losses = " with the exp or logistic loss" if precision == "extended" else ""
    raise ValueError(
        f"precision={precision!r} is available for {listed}{losses}; got model {mdl!r} with "
        f"loss {loss!r}."
    )


# ---- gradient flow -----------------------------------------------------------------------------


def flow_scaling(X: np.ndarray, depth: int) -> tuple[int, int, float]:
    """``(k, a, log t' - log t)``: data far from unit scale are integrated on ``X / 2**k`` with
    ``theta' = 2**a theta`` (``a = k / L``) in time ``t' = 2**(2a) t``, the same path
    (``references._scale.flow_scale_exponent``); ``(0, 0, 0.0)`` for data near unit scale."""
    from ..references._scale import flow_scale_exponent

    k = flow_scale_exponent(X, depth)
    a = k // depth
    return k, a, 2.0 * a * math.log(2.0)


def _flow_horizon(t_max: Any, log_t_max: Any) -> tuple[float, float | None]:
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
        return float(np.log(t_max_f)), t_max_f
    try:
        log_t_end = float(log_t_max)
    except (TypeError, ValueError):
        raise ValueError(f"log_t_max must be a finite number; got {log_t_max!r}.") from None
    if not np.isfinite(log_t_end):
        raise ValueError(f"log_t_max must be finite; got {log_t_end}.")
    return log_t_end, None


def _flow_options(options: dict[str, Any] | None) -> dict[str, Any]:
    opts = {**FLOW_OPTIONS, **(options or {})}
    unknown = sorted(set(opts) - set(FLOW_OPTIONS))
    if unknown:
        raise ValueError(f"Unknown flow option(s) {unknown}; valid: rtol, atol, max_steps.")
    rtol, atol = opts["rtol"], opts["atol"]
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
    max_steps = check_positive_int(opts["max_steps"], "max_steps")
    return {"rtol": rtol, "atol": atol, "max_steps": max_steps}


def _flow_spec(
    X, y, mdl, loss, theta0, opts, log_t_end, t_given, record, reference, init_scale, seed,
    linear_predictor, Z, key,
) -> RunSpec:  # fmt: skip
    from ..models.registry import gradient_data

    regression = loss == "squared"
    network = isinstance(mdl, Network)  # sees X and y (a linear network too)
    if network and not (reference is None or (isinstance(reference, str) and reference == "auto")):
        raise ValueError(f"{mdl!r} has no reference direction; pass reference=None.")
    gradient_data(mdl, X if network else Z)  # the model has a compiled gradient
    if network:
        ref_vec, ref_obj, w_tilde = None, None, None
    else:
        ref_vec, ref_obj, w_tilde = flow_reference(
            reference, mdl, X, y, theta0, regression, loss, key
        )
    log_times, times = _time_grid(record, log_t_end, t_given)
    _, _, lshift = flow_scaling(X, mdl.depth)
    rec_s = np.logaddexp(0.0, log_times + lshift)  # s = log(1 + t') (flow_scaling)
    _, first = np.unique(rec_s, return_index=True)
    return RunSpec(
        X=X,
        y=y,
        model=mdl,
        loss=loss,
        theta0=_frozen(np.array(theta0, dtype=np.float64)),
        optimizer=FLOW,
        options=tuple(opts.items()),
        lr=1.0,
        safe_lr=1.0,
        steps=0,
        record=_record_value(record),
        schedule=_frozen(np.ascontiguousarray(log_times[first])),
        schedule_t=_frozen(np.ascontiguousarray(times[first])),
        reference=ref_obj,
        reference_vec=ref_vec,
        w_tilde=w_tilde,
        init_scale=init_scale,
        seed=seed,
        log_t_max=log_t_end,
        t_max=t_given,
    )


# ---- multi-class ------------------------------------------------------------------------------


def _multiclass_spec(X, labels, steps, lr, W0, step_rule, record) -> RunSpec:
    X_in = X
    X, _ = check_X_y(X, None)
    X = _own(X, X_in)
    labels_arr = np.asarray(labels)
    if labels_arr.ndim != 1 or labels_arr.shape[0] != X.shape[0]:
        raise ValueError(
            f"labels must be a 1-D array with one label per row of X ({X.shape[0]}); got shape "
            f"{labels_arr.shape}."
        )
    if labels_arr.dtype.kind in "fc" and not np.all(np.isfinite(labels_arr)):
        raise ValueError("labels contain NaN or inf.")
    classes, codes = np.unique(labels_arr, return_inverse=True)
    K = classes.size
    if K < 2:
        raise ValueError(f"multi-class training needs at least 2 distinct labels; got {K}.")
    N, d = X.shape
    steps = check_positive_int(steps, "steps")
    check_choice(step_rule, "step_rule", list(MULTICLASS_RULES))
    record = check_positive_int(record, "record")
    if W0 is None:
        W = np.zeros((d, K))
    else:
        W = np.array(W0, dtype=np.float64)
        if W.shape != (d, K):
            raise ValueError(f"W0 must have shape (d, K) = ({d}, {K}); got {W.shape}.")
        if not np.all(np.isfinite(W)):
            raise ValueError("W0 contains NaN or inf.")
    try:  # 1 / sigma_max(X)**2 in log domain: a clear error when it does not fit in float64
        safe_lr = representable_lr(-2.0 * log_sigma(X, data_key(X)), "1/sigma_max(X)**2")
    except ScaleOutOfRangeError:
        if lr is None:
            raise
        safe_lr = float("nan")
    lr = safe_lr if lr is None else check_positive(lr, "lr")
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    from ..kernels._reference_optim import multiclass_weights

    start_r = float(np.max(multiclass_weights(X, W, codes)[3]))
    return RunSpec(
        X=X,
        y=_frozen(codes),
        model=Linear(),
        loss=MULTICLASS_LOSS,
        theta0=_frozen(np.ascontiguousarray(W).ravel().copy()),
        optimizer="gd",
        step_rule=step_rule,
        lr=float(lr),
        safe_lr=float(safe_lr),
        steps=steps,
        record=record,
        schedule=_frozen(checkpoint_steps(steps, record)),
        floor=max(start_r, 0.0) + math.log(N * K) + _DIVERGENCE_FACTOR,  # a ceiling on max r
        classes=classes,
    )
