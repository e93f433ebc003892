"""Scale-invariant problems at any scale of the data (issue 15: data of 1e200 or 1e-300).

Max-margin, min-norm and stationarity problems are homogeneous in X: the problem on ``c X``
is the problem on ``X`` with the solution divided by ``c``. The solvers square the data
(Gram matrices, norms of rows), which overflows for entries near 1e200 and underflows near
1e-300, so data far from unit scale are divided by a power of two ``c`` near their largest
entry (exact), solved, and the solution is mapped back:

* ``coef``, ``rho``, ``objective`` scale by ``1/c``; ``margin`` by ``c``;
* multipliers of an objective homogeneous of degree ``p`` (``||.||_2^2 / 2``: p = 2;
  ``||.||_1``: p = 1; ``sum |rho|^p``: p) scale by ``c**-p`` and the stationarity distance by
  ``c**(1-p)``; relative residuals and index sets are unchanged.

Data within ``2**+-_SAFE_BITS`` of unit scale are left alone (identical results).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["unit_scale", "rescale_solution", "rescale_certificate", "flow_scale_exponent"]

_SAFE_BITS = 64


def unit_scale(X: np.ndarray) -> tuple[np.ndarray, float]:
    """``(X / c, c)`` with ``c`` a power of two near ``max |X|``, or ``(X, 1.0)`` when the
    data are within ``2**+-64`` of unit scale (or all zero)."""
    top = float(np.max(np.abs(X))) if X.size else 0.0
    if top == 0.0 or not math.isfinite(top):
        return X, 1.0
    _, ex = math.frexp(top)
    if abs(ex) <= _SAFE_BITS:
        return X, 1.0
    return np.ldexp(X, -ex), math.ldexp(1.0, ex)


def _div(v: Any, c: float, power: float = 1.0) -> Any:
    """``v / c**power`` for arrays or numbers, as exact powers of two where possible."""
    if v is None:
        return None
    e = math.frexp(c)[1] - 1  # c = 2**e exactly
    shift = -e * power
    if float(shift).is_integer():
        with np.errstate(under="ignore", over="ignore"):
            if isinstance(v, np.ndarray):
                return np.ldexp(v.real, int(shift)) + (
                    1j * np.ldexp(v.imag, int(shift)) if np.iscomplexobj(v) else 0
                )
            return float(np.ldexp(float(v), int(shift)))
    with np.errstate(under="ignore", over="ignore"):
        factor = 2.0**shift
        return v * factor


def rescale_certificate(cert: Any, c: float, p: float) -> Any:
    """A :class:`StationarityResult` of the problem on ``X / c`` as one on ``X``."""
    if cert is None or c == 1.0:
        return cert
    return dataclasses.replace(
        cert,
        distance=_div(cert.distance, c, p - 1.0),
        alpha=_div(cert.alpha, c, p),
        scale=_div(cert.scale, c),
        eq_multipliers=_div(cert.eq_multipliers, c, p),
    )


def rescale_solution(sol: Any, c: float, X: np.ndarray | None = None, p: float | None = None):
    """A max-margin or min-norm solution of the problem on ``X / c`` as one on ``X``.

    ``p``: the homogeneity of the objective the multipliers belong to (default: 2 for the L2
    problems, whose objective is ``||w||^2 / 2``, else the solution's ``p``).
    """
    if c == 1.0:
        return sol
    from ._results import MarginSolution, MinNormSolution, StationaryPoint

    if isinstance(sol, MinNormSolution):
        q = 2.0 if sol.norm == "l2" else 1.0
        return dataclasses.replace(
            sol,
            coef=_div(sol.coef, c),
            objective=_div(sol.objective, c),
            dual=_div(sol.dual, c, q),
        )
    if p is None:
        p = sol.p if isinstance(sol, MarginSolution) else 2.0
    changes: dict[str, Any] = {
        "coef": _div(sol.coef, c),
        "margin": _div(sol.margin, c, -1.0),
        "dual": _div(sol.dual, c, p),
    }
    fields = {f.name for f in dataclasses.fields(sol)}
    if "_X" in fields and X is not None:
        changes["_X"] = X
    if isinstance(sol, MarginSolution):
        changes["objective"] = _div(sol.objective, c)
        changes["rho"] = _div(sol.rho, c)
        changes["certificate"] = rescale_certificate(sol.certificate, c, p)
        changes["stationary_points"] = tuple(
            dataclasses.replace(
                sp,
                coef=_div(sp.coef, c),
                objective=_div(sp.objective, c),
                margin=_div(sp.margin, c, -1.0),
                certificate=rescale_certificate(sp.certificate, c, p),
                rho=_div(sp.rho, c),
            )
            for sp in sol.stationary_points
            if isinstance(sp, StationaryPoint)
        )
    return dataclasses.replace(sol, **changes)


def flow_scale_exponent(X: np.ndarray, depth: int, safe_bits: int = 16) -> int:
    """``k`` (a multiple of ``depth``) such that the gradient flow is integrated on
    ``X / 2**k``, or 0 for data below ``2**safe_bits`` (small data have slow flows, which
    log time resolves; their equivalent times ``a**2 t`` could underflow).

    A model homogeneous of degree L in theta and linear in x has, on ``c X``, the flow
    ``theta(t) = theta'(a**2 t) / a`` of the problem on ``X`` with ``a = c**(1/L)``: the same
    path in time ``a**2 t``. From ``t = 0`` its time scale is ``1 / a**2``, which the log-time
    integrator does not resolve for ``c`` beyond ~1e10 (it would return a wrong direction).
    """
    top = float(np.max(np.abs(X))) if X.size else 0.0
    if top == 0.0 or not math.isfinite(top):
        return 0
    ex = math.frexp(top)[1]
    if ex <= safe_bits:
        return 0
    return int(depth * round(ex / depth))
