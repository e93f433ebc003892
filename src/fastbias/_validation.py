"""Input checks done once at the public boundary; kernels trust what passes here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
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
    """A finite float64 vector of length d."""
    v = np.asarray(v, dtype=np.float64).ravel() if np.ndim(v) <= 1 else np.asarray(v)
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
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 and finite; got {value}.")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """An integer >= 1 (floats like 1e6 are accepted when they are whole)."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.") from None
    if not np.isfinite(as_float) or as_float != int(as_float) or as_float < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
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
