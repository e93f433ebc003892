"""Multi-class training of a depth-2 ReLU network on the softmax cross-entropy, compiled runs.

Soudry et al. (2018), Section 4.3 (Figure 4.2, Table 1): a network trained with softmax
cross-entropy far past zero training error, whose training loss decays like ``1/t`` while the
norm of the last layer keeps growing, the validation loss rises and the validation error does
not. :func:`train_softmax_network` runs full-batch GD (heavy-ball momentum optional) on

    F(x) = W2 relu(W1 x),   L(W1, W2) = (1/N) sum_n log(1 + sum_{k != y_n} exp(F_k - F_{y_n}))

(eq. C.1 averaged over the samples) in compiled chunks of whole steps
(:mod:`fastbias.kernels._numba_softmax_net`, log-domain softmax) on the chunk loop of
:func:`fastbias.train` (:func:`fastbias.optim.driver.run_chunks`: progress, Ctrl-C,
checkpoints; resume with :func:`resume_softmax_network`), and evaluates the training and
validation loss and error at log-spaced steps.

The network has no biases: each output ``F_k`` is a depth-2 network of the class N of Vardi
et al. (2022, Section 2) (the ``C`` outputs share the hidden layer), positively homogeneous of
degree 2 in ``theta = (W1, W2)``, the setting of the implicit-bias results for homogeneous
networks. A bias would break that homogeneity unless it is fed a constant input feature, which
the caller can append to ``X``.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive, check_positive_int, check_X_y
from ..exceptions import CheckpointError, DivergenceError
from ..kernels import STATUS_DIVERGED
from .checkpoint import read_archive, write_archive
from .history import History, checkpoint_steps

__all__ = [
    "SoftmaxNetworkRun",
    "train_softmax_network",
    "resume_softmax_network",
    "softmax_network_default_lr",
]

_DIVERGENCE_NATS = 23.0  # stop when some r_n exceeds its start by 23 nats (e**23 ~ 1e10)


@dataclass
class SoftmaxNetworkRun:
    """The result of :func:`train_softmax_network`.

    Attributes
    ----------
    W1 : ndarray (H, d)
        First layer (row j: the incoming weights of hidden neuron j).
    W2 : ndarray (C, H)
        Last layer (row k: the weights of output k, class ``classes[k]``).
    classes : ndarray (C,)
        The sorted distinct training labels.
    history : History
        At the recorded steps: ``step``, ``train_loss``, ``train_log_loss`` (natural log of
        the mean cross-entropy, finite however small the loss is), ``train_error`` (fraction
        of training samples whose true class does not have the strictly largest output),
        ``val_loss``, ``val_log_loss``, ``val_error`` (with validation data), ``last_layer_norm``
        (``||W2||_F``), ``first_layer_norm`` (``||W1||_F``), ``theta_norm``, ``min_margin``
        (``min_n min_{k != y_n} F_{y_n}(x_n) - F_k(x_n)`` on the training set) and
        ``normalized_margin`` (``min_margin / ||theta||^2``, degree-2 homogeneity).
        ``history.iterates`` holds ``[W1.ravel(), W2.ravel()]`` at those steps.
    status : {"completed", "interrupted"}
    steps_done : int
    settings : dict
    elapsed : float
        Seconds spent in the compiled steps (summed over resumed pieces).
    """

    W1: np.ndarray
    W2: np.ndarray
    classes: np.ndarray
    history: History
    status: str
    steps_done: int
    settings: dict[str, Any]
    elapsed: float

    def decision_function(self, X: Any) -> np.ndarray:
        """The outputs ``F(x)`` (N x C)."""
        X = np.asarray(X, dtype=np.float64)
        return np.maximum(X @ self.W1.T, 0.0) @ self.W2.T

    def predict(self, X: Any) -> np.ndarray:
        """``classes[argmax_k F_k(x)]``."""
        return self.classes[np.argmax(self.decision_function(X), axis=1)]


@dataclass
class _State:
    """Everything a run needs to continue: what a checkpoint stores."""

    X: np.ndarray
    codes: np.ndarray
    X_val: np.ndarray | None
    codes_val: np.ndarray | None
    classes: np.ndarray
    W1: np.ndarray
    W2: np.ndarray
    V1: np.ndarray
    V2: np.ndarray
    lr: float
    momentum: float
    record: Any
    sched: np.ndarray
    rec: np.ndarray
    k_rec: int
    done: int
    steps: int
    ceiling: float
    settings: dict[str, Any]
    elapsed: float = 0.0
    format: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def extend(self, more: int) -> None:
        """Continue for ``more`` steps: a new target and the record rows beyond ``done``."""
        self.steps = self.done + more
        self.settings["steps"] = self.steps
        ahead = _schedule(self.record, self.steps)
        ahead = ahead[ahead > self.done]
        self.sched = np.concatenate([self.sched[: self.k_rec], ahead]).astype(np.int64)
        self.rec = np.concatenate(
            [self.rec[: self.k_rec], np.zeros((len(ahead), self.rec.shape[1]))]
        )


def _schedule(record: Any, steps: int) -> np.ndarray:
    if isinstance(record, (int, np.integer)) and not isinstance(record, bool):
        return checkpoint_steps(steps, check_positive_int(record, "record"))
    sched = np.unique(np.asarray(record, dtype=np.int64).ravel())
    if sched.size == 0 or sched[0] < 1 or sched[-1] > steps:
        raise ValueError(
            f"record steps must lie in [1, steps={steps}]; got {sched.size} steps"
            + (f" in [{sched[0]}, {sched[-1]}]." if sched.size else ".")
        )
    return np.unique(np.concatenate([sched, [steps]])).astype(np.int64)


def _codes(labels: Any, n: int, name: str, classes: np.ndarray | None) -> tuple:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"{name} must be a 1-D array with one label per row ({n}); got shape {arr.shape}."
        )
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contain NaN or inf.")
    if classes is None:
        classes, codes = np.unique(arr, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"{name} must hold at least 2 distinct classes; got {classes.size}.")
        return classes, np.ascontiguousarray(codes, dtype=np.int64)
    codes = np.searchsorted(classes, arr)
    codes = np.minimum(codes, classes.size - 1)
    unknown = classes[codes] != arr
    if np.any(unknown):
        raise ValueError(
            f"{name} hold the label {arr[unknown][0]!r}, which is not a training class "
            f"({', '.join(map(repr, classes.tolist()))})."
        )
    return classes, np.ascontiguousarray(codes, dtype=np.int64)


def softmax_network_default_lr(X: np.ndarray, W1: np.ndarray, W2: np.ndarray) -> float:
    """A step size stable at the start: ``1 / beta0`` with ``beta0`` the Gauss-Newton bound of
    the curvature of the mean cross-entropy at ``(W1, W2)``.

    The softmax Hessian in the outputs is at most ``I/2`` per sample, so the curvature along
    ``W2`` is at most ``lambda_max(Hr^T Hr / N) / 2`` and along ``W1`` at most
    ``||W2||_2^2 lambda_max(X^T X / N) / 2`` (``Hr`` the hidden activations); a heuristic, not
    a bound along the whole run.
    """
    N = X.shape[0]
    Hr = np.maximum(X @ W1.T, 0.0)
    b2 = float(np.linalg.norm(Hr, 2)) ** 2 / N
    b1 = float(np.linalg.norm(W2, 2)) ** 2 * float(np.linalg.norm(X, 2)) ** 2 / N
    beta0 = 0.5 * (b1 + b2)
    return 1.0 / beta0


def train_softmax_network(
    X: Any,
    labels: Any,
    *,
    hidden: int = 100,
    steps: int = 1000,
    lr: float | None = None,
    momentum: float = 0.0,
    init: Any = "he",
    init_scale: float = 1.0,
    seed: int | None = 0,
    validation: tuple[Any, Any] | None = None,
    record: int | Any = 10,
    progress: bool = False,
    chunk_seconds: float = 0.5,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 10.0,
) -> SoftmaxNetworkRun:
    """Full-batch GD on the softmax cross-entropy of ``F(x) = W2 relu(W1 x)``, compiled.

    Soudry et al. (2018), Section 4.3 and Figure 4.2: past zero training error the mean
    cross-entropy (eq. C.1 over ``N``) keeps decreasing like ``1/t`` while the weights grow;
    the softmax is evaluated in log domain, so the loss, its gradient and the recorded
    ``log L`` stay exact however far the run goes.

    Parameters
    ----------
    X : (N, d) array
    labels : (N,) array of any ``C >= 2`` distinct labels
    hidden : int
        Width ``H`` of the hidden layer.
    steps : int
        Number of steps (full-batch: one step is one epoch).
    lr : float, optional
        Step size; default :func:`softmax_network_default_lr` at the initialization.
    momentum : float in [0, 1)
        Heavy-ball ``beta``: ``V <- beta V - lr grad L``, ``theta <- theta + V`` (0: GD).
    init : "he" or (W1, W2)
        ``"he"``: ``W1 ~ N(0, 2/d)``, ``W2 ~ N(0, 1/H)`` entrywise (seeded), times
        ``init_scale``; or the initial layers, shapes ``(H, d)`` and ``(C, H)``.
    init_scale : float
    seed : int, optional
        Seed of ``"he"``.
    validation : (X_val, labels_val), optional
        Held-out data whose loss and error are recorded beside the training ones.
    record : int or array of int
        Records per decade (log-spaced, plus the last step), or explicit step numbers.
    progress : bool
        A progress bar on stderr, updated once per compiled chunk.
    chunk_seconds : float
        Target wall time of one compiled call.
    checkpoint : path, optional
        Save the whole state there (atomically) every ``checkpoint_every`` seconds, at Ctrl-C
        and at the end; continue with :func:`resume_softmax_network`.
    checkpoint_every : float

    Returns
    -------
    SoftmaxNetworkRun

    Raises
    ------
    DivergenceError
        When the loss blows up (``lr`` too large).
    """
    X, _ = check_X_y(X, None)
    N, d = X.shape
    classes, codes = _codes(labels, N, "labels", None)
    C = classes.size
    X_val = codes_val = None
    if validation is not None:
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise ValueError("validation must be a pair (X_val, labels_val).")
        X_val, _ = check_X_y(validation[0], None)
        if X_val.shape[1] != d:
            raise ValueError(f"validation X has {X_val.shape[1]} features; the training X has {d}.")
        _, codes_val = _codes(validation[1], X_val.shape[0], "validation labels", classes)
    H = check_positive_int(hidden, "hidden")
    steps = check_positive_int(steps, "steps")
    try:
        beta = float(momentum)
    except (TypeError, ValueError):
        raise ValueError(f"momentum must be a number in [0, 1); got {momentum!r}.") from None
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}.")
    init_scale = check_positive(init_scale, "init_scale")
    if isinstance(init, str):
        check_choice(init, "init", ["he"])
        rng = np.random.default_rng(seed)
        W1 = rng.standard_normal((H, d)) * math.sqrt(2.0 / d) * init_scale
        W2 = rng.standard_normal((C, H)) * math.sqrt(1.0 / H) * init_scale
    else:
        if not (isinstance(init, (tuple, list)) and len(init) == 2):
            raise ValueError("init must be 'he' or a pair (W1, W2) of arrays.")
        W1 = np.array(init[0], dtype=np.float64)
        W2 = np.array(init[1], dtype=np.float64)
        if W1.shape != (H, d) or W2.shape != (C, H):
            raise ValueError(
                f"init (W1, W2) must have shapes ({H}, {d}) and ({C}, {H}) (hidden={H}, "
                f"{C} classes); got {W1.shape} and {W2.shape}."
            )
        if not (np.all(np.isfinite(W1)) and np.all(np.isfinite(W2))):
            raise ValueError("init (W1, W2) contains NaN or inf.")
    W1, W2 = np.ascontiguousarray(W1), np.ascontiguousarray(W2)
    if not np.any(X @ W1.T > 0):
        raise ValueError(
            "the initial first layer W1 leaves every hidden ReLU inactive on every training "
            "sample: no gradient would ever reach the network. Use another init or seed."
        )
    lr = softmax_network_default_lr(X, W1, W2) if lr is None else check_positive(lr, "lr")
    sched = _schedule(record, steps)
    from ..kernels._reference_softmax_net import softmax_terms

    F0 = np.maximum(X @ W1.T, 0.0) @ W2.T
    r0 = float(np.max(softmax_terms(F0, codes)[1]))
    settings = {
        "model": f"depth-2 ReLU network d={d}, hidden={H}, classes={C}, no biases",
        "loss": "mean softmax cross-entropy",
        "optimizer": "gd" if beta == 0.0 else "momentum",
        "momentum": beta,
        "lr": lr,
        "steps": steps,
        "hidden": H,
        "init": init if isinstance(init, str) else "given",
        "init_scale": init_scale,
        "seed": seed,
        "n_train": N,
        "n_val": 0 if X_val is None else X_val.shape[0],
    }
    state = _State(
        X=X,
        codes=codes,
        X_val=X_val,
        codes_val=codes_val,
        classes=classes,
        W1=W1,
        W2=W2,
        V1=np.zeros_like(W1),
        V2=np.zeros_like(W2),
        lr=lr,
        momentum=beta,
        record=record,
        sched=sched,
        rec=np.zeros((sched.size, W1.size + W2.size)),
        k_rec=0,
        done=0,
        steps=steps,
        ceiling=max(r0, 0.0) + _DIVERGENCE_NATS,
        settings=settings,
    )
    return _execute(state, progress, chunk_seconds, checkpoint, checkpoint_every)


def resume_softmax_network(
    path: str | os.PathLike,
    steps: int | None = None,
    *,
    progress: bool = False,
    chunk_seconds: float = 0.5,
    checkpoint_every: float = 10.0,
) -> SoftmaxNetworkRun:
    """Continue a run from the checkpoint at ``path`` (``train_softmax_network(checkpoint=)``).

    ``steps`` more steps (default: the rest of the original run); the result is bit-identical
    to an uninterrupted run of the same total length.
    """
    state = _load(path)
    if steps is not None:
        state.extend(check_positive_int(steps, "steps"))
    return _execute(state, progress, check_positive(chunk_seconds, "chunk_seconds"), path,
                    checkpoint_every)  # fmt: skip


_KIND = "softmax-network"


def _save(path: Path, state: _State) -> None:
    """The state as a safe checkpoint (:mod:`fastbias.optim.checkpoint`: no pickle)."""
    write_archive(path, _KIND, {f.name: getattr(state, f.name) for f in fields(_State)})


def _load(path: str | os.PathLike) -> _State:
    """The state :func:`_save` wrote, checked to fit the compiled kernel (which trusts it)."""
    content = read_archive(path, _KIND)
    try:
        state = _State(**content)
        _check_state(state)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"{path} is not a softmax-network checkpoint this version can use: {exc}"
        ) from None
    return state


def _check_state(st: _State) -> None:
    def arr(a, shape, dtype=np.float64):
        return isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dtype

    if not (isinstance(st.X, np.ndarray) and st.X.ndim == 2 and st.X.dtype == np.float64):
        raise ValueError("its X is not a float64 matrix")
    N, d = st.X.shape
    H, C = st.W1.shape[0], st.classes.shape[0]
    if not (arr(st.codes, (N,), np.int64) and np.all((st.codes >= 0) & (st.codes < C))):
        raise ValueError("its labels are not class codes of X's rows")
    if not (arr(st.W1, (H, d)) and arr(st.V1, (H, d)) and arr(st.W2, (C, H))
            and arr(st.V2, (C, H))):  # fmt: skip
        raise ValueError("its layers do not have matching shapes")
    if (st.X_val is None) != (st.codes_val is None):
        raise ValueError("its validation data are incomplete")
    if st.X_val is not None and not (
        arr(st.X_val, (st.X_val.shape[0], d))
        and arr(st.codes_val, (st.X_val.shape[0],), np.int64)
        and np.all((st.codes_val >= 0) & (st.codes_val < C))
    ):
        raise ValueError("its validation data do not fit the network")
    K = st.sched.shape[0] if isinstance(st.sched, np.ndarray) else -1
    if not (arr(st.sched, (K,), np.int64) and K >= 1 and arr(st.rec, (K, H * d + C * H))):
        raise ValueError("its records do not fit the network")
    if not (0 <= st.done <= st.steps == st.sched[-1]
            and st.k_rec == int(np.searchsorted(st.sched, st.done, "right"))):  # fmt: skip
        raise ValueError("its step counters are inconsistent")


class _SoftmaxRunner:
    """The compiled softmax-network steps (``softmax_net_run``) as a runner of the shared chunk
    loop :func:`fastbias.optim.driver.run_chunks` (progress, Ctrl-C, checkpoints)."""

    status = "completed"

    def __init__(self, state: _State):
        self.total = state.steps
        N, d = state.X.shape
        H, C = state.W1.shape[0], state.W2.shape[0]
        self._est_ns = 4.0 * N * H * (d + C) * 0.25 + 50.0 * N * C  # ~4 flops/ns through BLAS

    def restore(self, state: _State) -> None:
        pass  # the kernel keeps nothing between calls: the state holds it all

    def progress(self, state: _State) -> int:
        return state.done

    def finished(self, state: _State) -> bool:
        return state.done >= state.steps

    def first_budget(self, chunk_seconds: float) -> int:
        return max(1, int(chunk_seconds * 1e9 / self._est_ns))

    def next_budget(self, budget: int, did: int, seconds: float, chunk_seconds: float) -> int:
        return max(1, int(did * chunk_seconds / seconds)) if seconds > 0 else budget

    def advance(self, state: _State, budget: int) -> int:
        """One compiled call of up to ``budget`` steps; raises DivergenceError."""
        from ..kernels._numba_softmax_net import softmax_net_run

        n = min(budget, state.steps - state.done)
        hi = int(np.searchsorted(state.sched, state.done + n, side="right"))
        lo = state.k_rec
        code, fail = softmax_net_run(
            state.X, state.codes, state.W1, state.W2, state.V1, state.V2, state.lr,
            state.momentum, state.done, n, state.sched[lo:hi], state.rec[lo:hi], state.ceiling,
        )  # fmt: skip
        if code == STATUS_DIVERGED:
            raise DivergenceError(
                f"the cross-entropy blew up at step {fail}: a sample's log-odds against "
                f"its class passed {state.ceiling:.4g} nats; lr={state.lr:g} is too large. "
                "Try a smaller lr (softmax_network_default_lr gives one stable at the "
                "start).",
                step=int(fail),
                suggested_lr=state.lr / 4,
            )
        state.done += n
        state.k_rec = hi
        return n

    def warn_if_long(self, state: _State, did: int, seconds: float, first_done: int) -> None:
        pass

    def finalize(self, state: _State) -> None:
        pass  # a dead network is reported by _finish


def _execute(state: _State, progress, chunk_seconds, checkpoint, checkpoint_every):
    """Run ``state`` to its ``steps`` on the shared driver loop and build the result."""
    from .._blas import single_blas_thread
    from .driver import checkpoint_target, run_chunks

    chunk_seconds = check_positive(chunk_seconds, "chunk_seconds")
    save = None
    if checkpoint is not None:
        checkpoint, checkpoint_every = checkpoint_target(checkpoint, checkpoint_every)

        def save() -> None:
            _save(checkpoint, state)

    # One BLAS thread: the products (N x d x H) are too small to gain from threads, and a
    # threaded BLAS collapses when other processes share the cores (measured 23 ms against
    # 1.5 ms for one 1198 x 64 x 100 product at load 9 on 2 cores).
    with single_blas_thread():
        status = run_chunks(
            _SoftmaxRunner(state),
            state,
            progress=progress,
            chunk_seconds=chunk_seconds,
            save=save,
            save_every=checkpoint_every,
        )
    return _finish(state, status)


def _finish(state: _State, status: str) -> SoftmaxNetworkRun:
    from ..kernels._numba_softmax_net import softmax_net_evaluate

    H, d = state.W1.shape
    C = state.W2.shape[0]
    steps = state.sched[: state.k_rec]
    rows = state.rec[: state.k_rec]
    if state.done > 0 and (state.k_rec == 0 or steps[-1] != state.done):
        steps = np.append(steps, state.done)
        rows = np.vstack([rows, np.concatenate([state.W1.ravel(), state.W2.ravel()])[None]])
    cols: dict[str, list] = {}
    names = ["train_log_loss", "train_error", "min_margin"]
    if state.X_val is not None:
        names += ["val_log_loss", "val_error"]
    names += ["last_layer_norm", "first_layer_norm", "theta_norm", "normalized_margin"]
    for name in names:
        cols[name] = []
    for row in rows:
        W1 = row[: H * d].reshape(H, d)
        W2 = row[H * d :].reshape(C, H)
        ll, err, margin = softmax_net_evaluate(state.X, state.codes, W1, W2)
        cols["train_log_loss"].append(ll)
        cols["train_error"].append(err / state.X.shape[0])
        cols["min_margin"].append(margin)
        if state.X_val is not None:
            vl, verr, _ = softmax_net_evaluate(state.X_val, state.codes_val, W1, W2)
            cols["val_log_loss"].append(vl)
            cols["val_error"].append(verr / state.X_val.shape[0])
        n1, n2 = float(np.linalg.norm(W1)), float(np.linalg.norm(W2))
        cols["last_layer_norm"].append(n2)
        cols["first_layer_norm"].append(n1)
        cols["theta_norm"].append(math.hypot(n1, n2))
        cols["normalized_margin"].append(margin / (n1 * n1 + n2 * n2) if n1 or n2 else np.nan)
    f64 = {name: np.asarray(v, dtype=np.float64) for name, v in cols.items()}
    out: dict[str, np.ndarray] = {"step": np.asarray(steps, dtype=np.int64)}
    out["train_loss"] = np.exp(f64["train_log_loss"])
    out["train_log_loss"] = f64["train_log_loss"]
    out["train_error"] = f64["train_error"]
    if state.X_val is not None:
        out["val_loss"] = np.exp(f64["val_log_loss"])
        out["val_log_loss"] = f64["val_log_loss"]
        out["val_error"] = f64["val_error"]
    for name in ("last_layer_norm", "first_layer_norm", "theta_norm", "min_margin",
                 "normalized_margin"):  # fmt: skip
        out[name] = f64[name]
    history = History(out, np.asarray(rows, dtype=np.float64), dict(state.settings))
    if state.done > 0 and not np.any(np.maximum(state.X @ state.W1.T, 0.0)):
        warnings.warn(
            "every hidden ReLU is inactive on every training sample: the network is dead and "
            "no gradient reaches it (lr too large early on?).",
            stacklevel=3,
        )
    return SoftmaxNetworkRun(
        W1=state.W1.copy(),
        W2=state.W2.copy(),
        classes=state.classes,
        history=history,
        status=status,
        steps_done=state.done,
        settings=dict(state.settings),
        elapsed=state.elapsed,
    )
