"""The reference a run's gaps are measured against: resolved once per run from the user's
``reference`` argument (``"auto"``, ``"svm"``, ``"min-norm"``, None, an array or a solution).

The exact solutions are cached by the content of the data (a BLAKE2 digest of ``X`` and
``y``), so a sweep of many runs on one data set solves its max-margin problem, Theorem 4's
``w_tilde`` for a given step and start, and ``sigma_max(X)`` once (:func:`solve_once`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_choice, check_vector
from .._warn import warn_user
from ..exceptions import NotSeparableError
from ..models import FullyConnected, Linear

__all__ = [
    "resolve_reference",
    "l1_reference",
    "flow_reference",
    "data_key",
    "solve_once",
    "cached_max_margin",
]

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_SIZE = 32
_LOCK = threading.Lock()


def data_key(*arrays: np.ndarray) -> bytes:
    """A digest of the arrays' shapes, dtypes and contents."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.digest()


def solve_once(key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, or its cached value (or re-raised exception) for the same ``key``.

    ``key`` must determine the result (it holds :func:`data_key` digests, not objects). The
    last 32 results are kept. Concurrent first calls may both compute, but every caller gets
    the value stored first: callers may compare what they got with the cached object (see
    :func:`resolve_reference`), so all of them must hold the same one.
    """
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            value = _CACHE[key]
            hit = True
        else:
            hit = False
    if not hit:
        try:
            value = compute()
        except (NotSeparableError, ValueError) as exc:
            value = exc
        with _LOCK:
            if key in _CACHE:  # another thread stored its result meanwhile: share that one
                _CACHE.move_to_end(key)
                value = _CACHE[key]
            else:
                _CACHE[key] = value
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
    if isinstance(value, Exception):
        raise type(value)(*value.args) from None  # a fresh exception per call (threads)
    return value


def cached_max_margin(X: np.ndarray, y: np.ndarray, key: bytes | None = None, norm: str = "l2"):
    """``max_margin(X, y, norm=norm)``, solved once per data set."""
    key = data_key(X, y) if key is None else key

    def compute():
        from ..references import max_margin  # (imported when solving, not on every hit)

        sol = max_margin(X, y) if norm == "l2" else max_margin(X, y, norm=norm)
        for value in sol.__dict__.values():  # shared by every run on the data: read-only
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        return sol

    return solve_once(("max_margin", norm, key), compute)


def resolve_reference(reference, mdl, X, y, lr, w0, step_rule, regression, key=None):
    """Return (reference vector or None, reference object, w_tilde or None).

    ``key``: the :func:`data_key` of ``(X, y)`` when the caller has it."""
    if reference is None or (isinstance(reference, str) and reference == "none"):
        return None, None, None
    if isinstance(reference, str):
        check_choice(reference, "reference", ["auto", "svm", "min-norm", "none"])
        if regression:
            if reference == "svm":
                raise ValueError("reference='svm' is for classification; the loss is squared.")
            if reference == "auto" and not isinstance(mdl, Linear):
                return None, None, None
            key = data_key(X, y) if key is None else key
            coef = solve_once(  # the minimum-norm interpolant
                ("min_norm", key), lambda: _frozen(np.linalg.lstsq(X, y, rcond=None)[0])
            )
            return coef, coef, None
        if reference == "min-norm":
            raise ValueError("reference='min-norm' is for the squared loss.")
        if reference == "auto" and not isinstance(mdl, (Linear, FullyConnected)):
            # Theorem 1 (L2 SVM) holds for Linear and FullyConnected only; other models'
            # limits come from fastbias.references (pass reference=... explicitly).
            return None, None, None
        key = data_key(X, y) if key is None else key
        try:
            sol = cached_max_margin(X, y, key)
            solved_here = True  # (the cached solution of these data: see below)
        except NotSeparableError:
            if reference == "svm":
                raise
            warn_user(
                "X, y are not linearly separable, so there is no max-margin reference; "
                "the history has no gap columns."
            )
            return None, None, None
        reference = sol
    else:
        solved_here = False
    from ..references import MaxMarginSolution  # (after the early returns of most deep runs)

    if isinstance(reference, MaxMarginSolution):
        w_tilde = None
        if step_rule == "fixed" and isinstance(mdl, Linear) and w0 is not None:
            solution = reference
            w0 = np.asarray(w0, dtype=np.float64)

            def compute():
                return _frozen(np.asarray(solution.w_tilde(lr, w0)))

            try:
                # The shared w_tilde(1) path is for the solution of these data only: the one
                # resolved above (even if 32 other results have evicted it from the cache
                # since: the path must not depend on other threads), or that same object
                # passed in by the caller.
                if key is not None and (
                    solved_here or reference is _CACHE.get(("max_margin", "l2", key))
                ):
                    w_tilde = solve_once(
                        ("w_tilde", key, float(lr), w0.tobytes()),
                        lambda: _w_tilde_at(solution, float(lr), w0, key),
                    )
                else:
                    w_tilde = compute()
            except ValueError:
                w_tilde = None  # Theorem 4 needs the support vectors to span the data
        return reference.coef, reference, w_tilde
    vec = check_vector(reference, X.shape[1], "reference")
    if not np.any(vec) and not regression:
        raise ValueError("reference direction is the zero vector; pass a nonzero direction.")
    return vec, vec, None


def _w_tilde_at(solution, lr: float, w0: np.ndarray, key: bytes) -> np.ndarray:
    """Theorem 4's ``w_tilde`` for step ``lr`` from the one for ``eta = 1``, solved once per
    data set and start (Soudry et al. eq. 2.7).

    Eq. 2.7, ``eta exp(-z_n^T w_tilde) = alpha_n`` on the support vectors ``S``, reads
    ``z_n^T w_tilde(eta) = log(eta) - log(alpha_n)``. The max-margin vector has
    ``z_n^T w_hat = 1`` on ``S`` and lies in ``span{z_n : n in S}`` (eq. 2.6), so
    ``w_tilde(1) + log(eta) w_hat`` solves eq. 2.7 for ``eta`` in that span, with the same
    component of ``w0`` orthogonal to it: by Theorem 4's uniqueness it is ``w_tilde(eta)``.
    A sweep over step sizes then pays one Newton solve (~0.3 ms for N=40, d=16) instead of
    one per step size; the result agrees with the direct solve to its tolerance
    (``tests/test_spec.py``)."""
    base = solve_once(
        ("w_tilde", key, 1.0, w0.tobytes()), lambda: _frozen(np.asarray(solution.w_tilde(1.0, w0)))
    )
    if lr == 1.0:
        return base
    return _frozen(base + np.log(lr) * np.asarray(solution.coef, dtype=np.float64))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def l1_reference(X, y, key=None):
    """The L1 max-margin solution, or None (with a warning) when X, y are not separable."""
    try:
        return cached_max_margin(X, y, key, norm="l1")
    except NotSeparableError:
        warn_user(
            "X, y are not linearly separable, so there is no max-margin reference; "
            "the history has no gap columns."
        )
        return None


def flow_reference(reference, mdl, X, y, theta0, regression, loss, key=None):
    """:func:`resolve_reference` for gradient flow (``eta = 1`` in Theorem 4's ``w_tilde``);
    raises NotSeparableError for a margin loss on non-separable data, where the flow comes to
    rest at a finite point and ``log t`` cannot advance."""
    key = data_key(X, y) if key is None else key
    if not regression:
        try:
            sol = cached_max_margin(X, y, key)
        except NotSeparableError as exc:
            raise NotSeparableError(
                f"gradient flow with the {loss} loss needs linearly separable data: otherwise "
                "the loss has a finite minimizer where the flow comes to rest and log t cannot "
                f"advance to t_max. ({exc}) Use loss='squared' or separable data."
            ) from None
        if isinstance(reference, str) and (
            reference == "svm"
            or (reference == "auto" and isinstance(mdl, (Linear, FullyConnected)))
        ):
            reference = sol
    w0 = theta0 if isinstance(mdl, Linear) else None
    return resolve_reference(reference, mdl, X, y, 1.0, w0, "fixed", regression, key)
