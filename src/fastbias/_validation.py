"""Input checks done once at the public boundary; kernels trust what passes here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ScaleOutOfRangeError",
    "check_initial_outputs",
    "check_checkpoint_path",
    "check_scale",
    "log_sigma_max",
    "representable_lr",
    "check_X_y",
    "check_X_targets",
    "check_positive",
    "check_positive_int",
    "check_choice",
    "check_vector",
    "encode_labels",
]


def encode_labels(y: Any, n: int) -> np.ndarray:
    """Map labels to -1/+1.

    ``None`` means every label is +1 (the papers' convention of labels folded into x_n).
    Labels already in {-1, +1} are kept. A single class of any other value becomes +1.
    Two other classes ``a < b`` (sorted order) become ``a -> -1`` and ``b -> +1``, so
    {0, 1} and {1, 2} codings work as expected. More than two classes is an error.
    """
    if y is None:
        return np.ones(n)
    y = np.asarray(y)
    if y.ndim != 1:
        y = np.squeeze(y)
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D array of labels; got shape {np.shape(y)}.")
    if y.shape[0] != n:
        raise ValueError(f"X has {n} rows but y has {y.shape[0]} labels; they must match.")
    if y.dtype.kind in "fc":
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or inf; labels must be finite.")
        if y.dtype.kind == "c":
            raise ValueError("y is complex; labels must be real.")
    if y.dtype.kind in "iuf" and y.size and bool(np.all(np.abs(y) == 1)):
        return y.astype(np.float64)  # already in {-1, +1} (the common case: no sort)
    classes = np.unique(y)
    if classes.size > 2:
        shown = ", ".join(str(c) for c in classes[:5])
        raise ValueError(
            f"y has {classes.size} distinct labels ({shown}{', ...' if classes.size > 5 else ''}); "
            "binary classification needs at most two."
        )
    if y.dtype.kind in "biuf" and set(classes.tolist()) <= {-1, 1}:
        return y.astype(np.float64)
    if classes.size == 1:
        return np.ones(n)
    return np.where(y == classes[1], 1.0, -1.0)


def check_X_y(X: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a design matrix and labels.

    Returns
    -------
    X : ndarray of shape (N, d), float64, C-contiguous
    y : ndarray of shape (N,), float64 in {-1, +1}
    """
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"X must be a numeric array; {exc}") from None
    if X.ndim == 1:
        raise ValueError(
            f"X must be 2-D of shape (N, d); got a 1-D array of length {X.shape[0]}. "
            "Use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample."
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (N, d); got shape {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty (shape {X.shape}); need at least one sample and one feature.")
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"X contains NaN or inf (first at row {bad[0]}, column {bad[1]}); data must be finite."
        )
    y = encode_labels(y, X.shape[0])
    return np.ascontiguousarray(X), y


def check_vector(v: Any, d: int, name: str) -> np.ndarray:
    """A finite float64 vector of length d (a row or column ``(1, d)`` / ``(d, 1)`` too)."""
    try:
        v = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric vector of length {d}; got {v!r}.") from None
    if v.ndim == 0 or (v.ndim > 1 and sum(n != 1 for n in v.shape) <= 1):
        v = v.reshape(-1)
    if v.ndim != 1 or v.shape[0] != d:
        raise ValueError(f"{name} must be a vector of length {d}; got shape {np.shape(v)}.")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or inf; it must be finite.")
    return np.ascontiguousarray(v, dtype=np.float64)


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0; got {value!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 and finite; got {value}.")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """An integer >= 1 (floats like 1e6 are accepted when they are whole)."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.") from None
    if not math.isfinite(as_float) or as_float != int(as_float) or as_float < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    if as_float >= 2.0**62:
        raise ValueError(f"{name} must be below 2**62 (the kernels count in int64); got {value!r}.")
    return int(as_float)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of a fixed set of names."""
    if value not in choices:
        expected = ", ".join(repr(c) for c in sorted(choices))
        raise ValueError(f"Unknown {name} {value!r}; expected one of {expected}.")
    return value


def check_X_targets(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a design matrix and real regression targets (no label coding)."""
    X, _ = check_X_y(X, None)
    if y is None:
        raise ValueError("the squared loss needs regression targets y; got None.")
    try:
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("regression targets y must be real numbers.") from None
    y = np.squeeze(y) if y.ndim > 1 else y
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has shape {np.shape(y)}; they must match.")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or inf; targets must be finite.")
    return X, np.ascontiguousarray(y)


class ScaleOutOfRangeError(ValueError):
    """The data (or initialization) are at a scale where a quantity the run needs does not
    fit in float64."""


_LOG_MAX = 700.0  # |log| of the step sizes and scales that are safely inside float64


def log_sigma_max(Z: np.ndarray) -> float:
    """``log sigma_max(Z)`` (largest singular value) at any scale of ``Z``: computed on ``Z``
    divided by a power of two near ``max |Z|`` (exact), so ``1e200`` or ``1e-300`` entries
    neither overflow nor underflow."""
    Z = np.asarray(Z, dtype=np.float64)
    top = float(np.max(np.abs(Z))) if Z.size else 0.0
    if top == 0:
        raise ValueError("every sample is zero; there is nothing to train on.")
    _, ex = np.frexp(top)
    sigma_s = float(np.linalg.norm(np.ldexp(Z, -int(ex)), 2))
    return float(np.log(sigma_s) + int(ex) * np.log(2.0))


def representable_lr(log_lr: float, what: str) -> float:
    """``exp(log_lr)``, or a :class:`ScaleOutOfRangeError` that names the scale problem when
    the step size does not fit in float64 (data or initialization far from unit scale)."""
    if -_LOG_MAX <= log_lr <= _LOG_MAX:
        return float(np.exp(log_lr))
    raise ScaleOutOfRangeError(
        f"the default step size {what} = 10**{log_lr / np.log(10.0):.4g} does not fit in "
        "float64: the scale of X (or of the initialization) is out of the range where "
        "gradient descent runs in float64. GD is scale-covariant: train on X / c for a c "
        "near the size of the entries of X (the run on X is w = w' / c with lr = lr' / c**2), "
        "or pass lr explicitly."
    )


def check_initial_outputs(model: Any, params: Any, X: np.ndarray, init_scale: float) -> np.ndarray:
    """The initial outputs ``f(x_n)`` must be finite and well inside float64 (|f| < 1e150:
    their squares and the loss's derivatives are formed from them); otherwise a
    :class:`ScaleOutOfRangeError` naming ``init_scale`` and the initialization. Returns the
    outputs (N,)."""
    with np.errstate(all="ignore"):
        if getattr(model, "linear_predictor", True):
            beta = np.asarray(model.predictor(params), dtype=np.float64)
            out = X @ beta if np.isfinite(beta).all() else beta
        else:
            out = np.asarray(model.forward(params, X), dtype=np.float64)
        big = float(np.abs(out).max()) if out.size else 0.0
    if not big < 1e150:
        raise ScaleOutOfRangeError(
            f"the initial outputs f(x) reach {big:.3g} (init_scale={init_scale:g}, largest "
            f"entry of X {float(np.max(np.abs(X))):.3g}), out of the range where the run's "
            "losses and gradients fit in float64 (|f(x)| < 1e150); rescale X or use a smaller "
            "init_scale or smaller initial parameters."
        )
    return out


def check_checkpoint_path(path: Any, must_exist: bool) -> Any:
    """A checkpoint path that is a file (not a folder) in an existing folder."""
    from pathlib import Path

    try:
        p = Path(path)
    except TypeError:
        raise ValueError(f"checkpoint must be a file path; got {path!r}.") from None
    if p.is_dir():
        raise ValueError(
            f"checkpoint {p} is a directory; pass a file path such as {p / 'run.ckpt'}."
        )
    if must_exist and not p.exists():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    return p


def check_scale(X: np.ndarray, limit: float, why: str) -> None:
    """A :class:`ScaleOutOfRangeError` when ``max |X| > limit`` (``why``: what overflows)."""
    top = float(np.max(np.abs(X))) if X.size else 0.0
    if top > limit:
        raise ScaleOutOfRangeError(
            f"the largest entry of X is {top:.3g}, beyond {limit:.0e}: out of range here "
            f"({why}, which overflow float64). The problem is homogeneous in X: divide X by a "
            "power of two near its largest entry (theta and the margins scale accordingly)."
        )
