"""Optimizers other than plain GD, compiled like GD, for every model; and multi-class GD.

Soudry et al. (2018), Section 4: heavy-ball momentum (Fig. 3.1, GDMO) and mini-batch SGD
(Fig. E.1) keep the L2 max-margin bias of GD; Adam and AdaGrad (Fig. 4.1) change it (their
directions stop improving away from the L2 max-margin direction on the horizons of the paper;
with ``eps > 0`` Adam eventually turns into GD with step ``lr / eps`` once the gradients are
far below ``eps``); greedy coordinate descent on the exponential loss (boosting, Section 4.2)
is biased towards the L1 max-margin direction. Softmax cross-entropy (Section 4.1, Appendix C) is
in :mod:`fastbias.optim.multiclass`.

:func:`make_optimizer_runner` returns a runner with the contract of the GD runners of
:mod:`fastbias.models` (``runner(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor)
-> (status, fail_step)``, chunked calls continue where the previous one stopped), whose
optimizer state is in ``runner.state`` (a dict of NumPy arrays, updated in place).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int
from ..kernels import STEP_RULE_CODES
from ..models import (
    Linear,
    Model,
    Network,
    get_model,
)
from ..models.registry import gradient_data

__all__ = [
    "OPTIMIZERS",
    "OptimizerRunner",
    "check_optimizer",
    "default_optimizer_lr",
    "make_optimizer_runner",
]

# Kernel codes (``_numba_optim.OPT_*``) and defaults of every optimizer's options. "gd" runs
# as heavy ball with beta = 0 (the same arithmetic as the GD kernels of fastbias.models).
_CODES = {"gd": 0, "momentum": 0, "sgd": 1, "adam": 2, "adagrad": 3, "coordinate": 4}
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "gd": {},
    "momentum": {"beta": 0.9},
    "sgd": {"batch_size": 1, "seed": 0, "momentum": 0.0},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adagrad": {"eps": 1e-10},
    "coordinate": {},
}
# Step rules each optimizer composes with. Adam and AdaGrad set their own per-coordinate step
# from the gradient history, so rescaling the gradient per step (normalized, loss-scaled) would
# silently change the method; they accept "fixed" only.
_RULES = {
    "gd": ("fixed", "normalized", "loss-scaled", "loss-scaled-backtracking"),
    "momentum": ("fixed", "normalized", "loss-scaled"),
    "sgd": ("fixed", "normalized", "loss-scaled"),
    "adam": ("fixed",),
    "adagrad": ("fixed",),
    "coordinate": ("fixed", "normalized", "loss-scaled"),
}
_RULE_NAMES = {code: name for name, code in STEP_RULE_CODES.items()}


def _unit_interval(value: Any, name: str, optimizer: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{optimizer} option {name} must be a number in [0, 1); got {value!r}."
        ) from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{optimizer} option {name} must be in [0, 1); got {value}.")
    return value


def check_optimizer(
    optimizer: str,
    options: dict[str, Any] | None = None,
    *,
    step_rule: str = "fixed",
    model: Any = None,
    n_samples: int | None = None,
) -> dict[str, Any]:
    """Validate an optimizer name, its options and the step rule; return the full options.

    Parameters
    ----------
    optimizer : {"gd", "momentum", "sgd", "adam", "adagrad", "coordinate"}
    options : dict, optional
        Overrides of :data:`OPTIMIZERS` ``[optimizer]``: momentum ``beta`` in [0, 1); sgd
        ``batch_size`` in [1, N], ``seed`` (int >= 0), ``momentum`` in [0, 1); adam ``beta1``,
        ``beta2`` in [0, 1), ``eps >= 0``; adagrad ``eps >= 0``; coordinate none.
    step_rule : {"fixed", "normalized", "loss-scaled"}
        Adam and AdaGrad accept "fixed" only.
    model : Model or str, optional
        Checked for compatibility ("coordinate" is for the linear model).
    n_samples : int, optional
        N, to check ``batch_size <= N``.

    Returns
    -------
    dict
        Every option of the optimizer, defaults filled in, values converted.
    """
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        names = ", ".join(repr(n) for n in OPTIMIZERS)
        raise ValueError(f"Unknown optimizer {optimizer!r}; expected one of {names}.")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ValueError(f"optimizer options must be a dict; got {type(options).__name__}.")
    defaults = OPTIMIZERS[optimizer]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(repr(k) for k in defaults) or "none"
        raise ValueError(
            f"Unknown option(s) {', '.join(repr(k) for k in unknown)} for optimizer "
            f"{optimizer!r}; valid options: {valid}."
        )
    opts = {**defaults, **options}
    for name in ("beta", "beta1", "beta2", "momentum"):
        if name in opts:
            opts[name] = _unit_interval(opts[name], name, optimizer)
    if "eps" in opts:
        try:
            eps = float(opts["eps"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{optimizer} option eps must be a number >= 0; got {opts['eps']!r}."
            ) from None
        if not (eps >= 0.0 and np.isfinite(eps)):
            raise ValueError(f"{optimizer} option eps must be finite and >= 0; got {eps}.")
        opts["eps"] = eps
    if optimizer == "sgd":
        opts["batch_size"] = check_positive_int(opts["batch_size"], "sgd option batch_size")
        if n_samples is not None and opts["batch_size"] > n_samples:
            raise ValueError(
                f"sgd option batch_size must be in [1, N] = [1, {n_samples}]; got "
                f"{opts['batch_size']}."
            )
        seed = opts["seed"]
        if (
            not isinstance(seed, (int, np.integer))
            or isinstance(seed, bool)
            or not 0 <= int(seed) < 2**63
        ):
            raise ValueError(f"sgd option seed must be an integer in [0, 2**63); got {seed!r}.")
        opts["seed"] = int(seed)
    check_choice(step_rule, "step_rule", list(STEP_RULE_CODES))
    if step_rule not in _RULES[optimizer]:
        raise ValueError(
            f"step_rule={step_rule!r} does not compose with optimizer={optimizer!r}: "
            f"{optimizer} sets its own per-coordinate step from the gradient history; "
            "use step_rule='fixed'."
        )
    if model is not None and optimizer == "coordinate":
        mdl = get_model(model)
        if not isinstance(mdl, Linear):
            raise ValueError(
                "optimizer='coordinate' (greedy coordinate descent, the boosting bias of Soudry "
                f"et al. Section 4.2) is for the linear model; got {mdl!r}."
            )
    return opts


def default_optimizer_lr(
    optimizer: str, options: dict[str, Any], safe_lr: float, n_samples: int
) -> float:
    """A default step size for ``optimizer`` given GD's safe step ``safe_lr`` (``1/beta``).

    * momentum: ``safe_lr`` (Soudry Fig. 3.1 uses GD's step for GDMO; heavy ball is stable on
      a ``beta``-smooth quadratic for ``eta beta < 2 (1 + momentum)``);
    * sgd: ``safe_lr * batch_size / N`` (the estimate ``(N/B) sum_batch`` is up to ``N/B``
      times as curved as the full loss);
    * adam: ``1e-3`` and adagrad: ``1e-2`` (Kingma and Ba's and the usual defaults; their lr
      is a per-coordinate step length, not a multiple of the gradient);
    * coordinate: ``safe_lr`` (one coordinate's curvature is at most the full curvature).

    ``options`` are the validated options of :func:`check_optimizer`.
    """
    if optimizer == "adam":
        return 1e-3
    if optimizer == "adagrad":
        return 1e-2
    if optimizer == "sgd":
        return safe_lr * options["batch_size"] / n_samples
    return safe_lr


class OptimizerRunner:
    """Runs chunks of optimizer steps in one compiled call each; see :func:`make_optimizer_runner`.

    Attributes
    ----------
    optimizer : str
    options : dict
        The validated options.
    state : dict of str to ndarray
        The optimizer state, updated in place by every call (see :func:`make_optimizer_runner`).
        Save it with :meth:`get_state`; restore it with :meth:`set_state` (or
        :meth:`load_state`).
    """

    scaled = False  # theta is passed unscaled (no ``scale`` / ``rec_scale`` arguments)

    def __init__(
        self, kernel, optimizer, options, args_before, args_after, loss, n_params, n_samples
    ):
        self.optimizer = optimizer
        self._loss = int(loss)
        self.options = options
        self._kernel = kernel
        self._before = args_before
        self._after = args_after
        self._code = _CODES[optimizer]
        self._hyper = np.array(
            [
                options.get("beta", options.get("momentum", 0.0)),
                options.get("beta1", 0.0),
                options.get("beta2", 0.0),
                options.get("eps", 0.0),
            ],
            dtype=np.float64,
        )
        self._batch = int(options.get("batch_size", n_samples))
        self._seed = int(options.get("seed", 0))
        self._vel = np.zeros(n_params)
        self._sq = np.zeros(n_params)
        self._scale = np.full(1, -np.inf)
        if optimizer in ("momentum", "sgd"):
            self.state = {"velocity": self._vel}
        elif optimizer == "gd":
            self.state = {}
        elif optimizer == "adam":
            self.state = {"m": self._vel, "v": self._sq, "log_scale": self._scale}
        elif optimizer == "adagrad":
            self.state = {"accumulator": self._sq, "log_scale": self._scale}
        else:
            self.state = {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Copy a saved ``state`` (same keys and shapes) into the runner's arrays."""
        if set(state) != set(self.state):
            raise ValueError(
                f"state has keys {sorted(state)}; optimizer {self.optimizer!r} needs "
                f"{sorted(self.state)}."
            )
        for key, arr in self.state.items():
            new = np.asarray(state[key], dtype=np.float64)
            if new.shape != arr.shape:
                raise ValueError(f"state[{key!r}] has shape {new.shape}; expected {arr.shape}.")
            arr[...] = new

    def get_state(self) -> dict[str, np.ndarray]:
        """A copy of :attr:`state` (the checkpoint protocol of ``fastbias.optim.gd``)."""
        return {key: arr.copy() for key, arr in self.state.items()}

    def set_state(self, saved: dict[str, np.ndarray]) -> None:
        """Restore a :meth:`get_state` result (same as :meth:`load_state`)."""
        self.load_state(saved)

    def reset(self) -> None:
        """Forget the optimizer state (zero moments, no scale)."""
        self._vel[:] = 0.0
        self._sq[:] = 0.0
        self._scale[0] = -np.inf

    def __call__(self, theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
        """Run steps ``step0 .. step0 + n_steps - 1``; the GD-runner contract of
        :mod:`fastbias.models` (``theta`` updated in place, ``rec_theta`` rows written at
        ``rec_steps``). Returns ``(status, fail_step)``."""
        if theta.dtype != np.float64 or rec_theta.dtype != np.float64:
            raise ValueError(
                f"optimizer={self.optimizer!r} runs in float64 (precision='float64'); got theta "
                f"of dtype {theta.dtype} and rec_theta of dtype {rec_theta.dtype}."
            )
        name = _RULE_NAMES.get(int(rule))
        if name not in _RULES[self.optimizer]:
            raise ValueError(
                f"step rule {name or rule!r} does not compose with optimizer "
                f"{self.optimizer!r}; allowed: {', '.join(_RULES[self.optimizer])}."
            )
        status, fail = self._kernel(
            *self._before,
            theta,
            float(lr),
            self._loss,
            int(rule),
            int(step0),
            int(n_steps),
            rec_steps,
            rec_theta,
            float(floor),
            self._code,
            self._hyper,
            self._batch,
            self._seed,
            self._vel,
            self._sq,
            self._scale,
            *self._after,
        )
        return int(status), int(fail)

    def __repr__(self) -> str:
        return f"OptimizerRunner({self.optimizer!r}, {self.options!r})"


def make_optimizer_runner(
    model: Model | str,
    Z: np.ndarray,
    targets: np.ndarray,
    loss_code: int,
    optimizer: str,
    options: dict[str, Any] | None = None,
) -> OptimizerRunner:
    """A compiled runner of ``optimizer`` on ``model`` with the GD-runner contract.

    ``runner(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor) -> (status,
    fail_step)`` exactly as ``Model.runner`` (float64): ``theta`` (flat, float64) is updated in
    place, ``rec_theta[k]`` receives the iterate after step ``rec_steps[k]``, status 1 means the
    divergence test failed at ``fail_step``. Chunked calls continue where the previous call
    stopped: the optimizer state is ``runner.state`` and the SGD sample sequence and Adam's bias
    correction are functions of the global step number ``step0 + i``.

    Optimizers (Soudry et al. 2018, Sections 3-4 and Appendix E):

    * ``"gd"``: plain GD (heavy ball with ``beta = 0``); ``Model.runner`` is the faster path.
    * ``"momentum"`` (heavy ball, Fig. 3.1 GDMO): ``v <- beta v - eta_t grad L``,
      ``theta <- theta + v``. State ``velocity``.
    * ``"sgd"`` (Fig. E.1): the gradient of a mini-batch of ``batch_size`` samples, times
      ``N / batch_size`` (unbiased), optionally with heavy-ball ``momentum``. The samples of
      step ``t`` are positions ``t B .. t B + B - 1`` of the concatenation of one seeded
      permutation per epoch (``_reference_optim.batch_indices``); state ``velocity``.
    * ``"adam"`` (Fig. 4.1; Kingma and Ba, with bias correction): state ``m``, ``v`` and
      ``log_scale`` with the moments ``exp(log_scale) m`` and ``exp(2 log_scale) v`` (the
      gradient is carried in log domain, so the moments never underflow; see
      ``_numba_optim.optimizer_step`` for what happens when ``eps exp(-log_scale)``
      overflows).
    * ``"adagrad"``: accumulator ``exp(2 log_scale) accumulator``; step
      ``eta grad / (sqrt(acc) + eps)``.
    * ``"coordinate"``: greedy coordinate descent (steepest descent for the L1 norm; boosting,
      Section 4.2), linear model only: only the coordinate with the largest ``|grad_j|`` moves.

    Step rules (``rule`` = ``fastbias.kernels.STEP_RULE_CODES``): fixed, normalized
    (``eta / ||grad||``, for coordinate descent ``eta / |grad_j|``) and loss-scaled
    (``eta / L``) for momentum, SGD and coordinate descent; fixed only for Adam and AdaGrad.

    Parameters
    ----------
    model : Model or str
        ``Linear``, ``FullyConnected``, ``Diagonal``, ``Convolutional`` or ``Tensor``.
    Z : (N, d) array
        Rows ``y_n x_n`` (classification) or ``x_n`` (squared loss), as for ``Model.runner``.
    targets : (N,) array
        Regression targets (read for ``loss_code = 2`` only).
    loss_code : int
        0 exponential, 1 logistic, 2 squared.
    optimizer : str
    options : dict, optional
        See :func:`check_optimizer`.

    Raises
    ------
    ValueError
        Unknown optimizer or option, option out of range, non-finite data, or a model the
        optimizer does not support.
    """
    mdl = get_model(model)
    Zc = np.ascontiguousarray(Z, dtype=np.float64)
    if Zc.ndim != 2 or Zc.shape[0] == 0 or Zc.shape[1] == 0:
        raise ValueError(f"Z must be a non-empty 2-D array (N, d); got shape {Zc.shape}.")
    if not np.all(np.isfinite(Zc)):
        raise ValueError("Z contains NaN or inf; the data must be finite.")
    N, d = Zc.shape
    tc = np.ascontiguousarray(targets, dtype=np.float64).ravel()
    if tc.shape != (N,):
        raise ValueError(f"targets must have shape ({N},); got {np.shape(targets)}.")
    if not np.all(np.isfinite(tc)):
        raise ValueError("targets contain NaN or inf; they must be finite.")
    if loss_code not in (0, 1, 2):
        raise ValueError(
            f"loss_code must be 0 (exp), 1 (logistic) or 2 (squared); got {loss_code}."
        )
    opts = check_optimizer(optimizer, options, model=mdl, n_samples=N)
    n_params = mdl.n_params(d)
    from ..kernels import _numba_optim as K
    from ..kernels._numba_flow import KIND_LINEAR

    if isinstance(mdl, Network) and not mdl.linear_predictor and loss_code != 2:
        # Z holds the inputs X and targets the labels
        if not np.all(np.abs(tc) == 1.0):
            raise ValueError("a ReLU network's labels must be -1 or +1 (pass X and y).")
    kind, ZT, ints, offsets, pos, jidx, vals, net = gradient_data(mdl, Zc)
    if kind == KIND_LINEAR:  # its own kernel: compiles faster, no scratch tuples per step
        kernel, before, after = K.opt_linear, (ZT, tc), ()
    else:
        kernel = K.opt_model
        before = (kind, ZT, tc)
        after = (ints, offsets, pos, jidx, vals, net)
    return OptimizerRunner(kernel, optimizer, opts, before, after, loss_code, n_params, N)
