"""The reference a run's gaps are measured against: resolved once per run from the user's
``reference`` argument (``"auto"``, ``"svm"``, ``"min-norm"``, None, an array or a solution)."""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_vector
from .._warn import warn_user
from ..exceptions import NotSeparableError
from ..models import FullyConnected, Linear

__all__ = ["resolve_reference", "l1_reference", "flow_reference"]


def resolve_reference(reference, mdl, X, y, lr, w0, step_rule, regression):
    """Return (reference vector or None, reference object, w_tilde or None)."""
    from ..references import MaxMarginSolution, max_margin

    if reference is None or (isinstance(reference, str) and reference == "none"):
        return None, None, None
    if isinstance(reference, str):
        check_choice(reference, "reference", ["auto", "svm", "min-norm", "none"])
        if regression:
            if reference == "svm":
                raise ValueError("reference='svm' is for classification; the loss is squared.")
            if reference == "auto" and not isinstance(mdl, Linear):
                return None, None, None
            coef = np.linalg.lstsq(X, y, rcond=None)[0]  # minimum-norm interpolant
            return coef, coef, None
        if reference == "min-norm":
            raise ValueError("reference='min-norm' is for the squared loss.")
        if reference == "auto" and not isinstance(mdl, (Linear, FullyConnected)):
            # Theorem 1 (L2 SVM) holds for Linear and FullyConnected only; other models'
            # limits come from fastbias.references (pass reference=... explicitly).
            return None, None, None
        try:
            sol = max_margin(X, y)
        except NotSeparableError:
            if reference == "svm":
                raise
            warn_user(
                "X, y are not linearly separable, so there is no max-margin reference; "
                "the history has no gap columns."
            )
            return None, None, None
        reference = sol
    if isinstance(reference, MaxMarginSolution):
        w_tilde = None
        if step_rule == "fixed" and isinstance(mdl, Linear) and w0 is not None:
            try:
                w_tilde = reference.w_tilde(lr, w0)
            except ValueError:
                w_tilde = None  # Theorem 4 needs the support vectors to span the data
        return reference.coef, reference, w_tilde
    vec = check_vector(reference, X.shape[1], "reference")
    if not np.any(vec) and not regression:
        raise ValueError("reference direction is the zero vector; pass a nonzero direction.")
    return vec, vec, None


def l1_reference(X, y):
    """The L1 max-margin solution, or None (with a warning) when X, y are not separable."""
    from ..references import max_margin

    try:
        return max_margin(X, y, norm="l1")
    except NotSeparableError:
        warn_user(
            "X, y are not linearly separable, so there is no max-margin reference; "
            "the history has no gap columns."
        )
        return None


def flow_reference(reference, mdl, X, y, theta0, regression, loss):
    """:func:`resolve_reference` for gradient flow (``eta = 1`` in Theorem 4's ``w_tilde``);
    raises NotSeparableError for a margin loss on non-separable data, where the flow comes to
    rest at a finite point and ``log t`` cannot advance."""
    from ..references import max_margin

    if not regression:
        try:
            sol = max_margin(X, y)
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
    return resolve_reference(reference, mdl, X, y, 1.0, w0, "fixed", regression)
