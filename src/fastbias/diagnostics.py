"""Distances to the max-margin direction and convergence rates (Soudry et al. 2018, Section 3).

All gaps are computed from the difference of unit vectors ``delta = w/||w|| - v/||v||``,
which is accurate to round-off in absolute terms, instead of from ``1 - cos``, which rounds
to zero once the angle is below ~1e-8:

* direction distance (eq. 3.1): ``||delta||``
* angle gap (eq. 3.2): ``1 - cos(w, v) = ||delta||^2 / 2`` (exact identity for unit vectors)
* margin gap (eq. 3.3): ``gamma_v - min_n z_n.u = max_n (c_n - z_n.delta)`` with
  ``c_n = gamma_v - z_n.v >= 0`` computed once from the reference.

They work for float64 and ``np.longdouble`` iterates alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "norm",
    "direction_distance",
    "angle_gap",
    "margin_gap",
    "RateFit",
    "RateReport",
    "fit_rates",
]


def norm(v: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Euclidean norm that neither overflows nor underflows (scaled by ``max |v|``)."""
    v = np.asarray(v)
    if axis is None and v.ndim == 1 and v.dtype == np.float64 and v.size:
        # one float64 vector (the common call): the operations below in the same order with
        # fewer array calls, the same numbers bit for bit
        scale = np.abs(v).max()
        u = v / (scale if scale > 0 else 1.0)
        return np.sqrt((u * u).sum()) * scale
    scale = np.max(np.abs(v), axis=axis, keepdims=True)
    safe = np.where(scale > 0, scale, 1)
    out = np.sqrt(np.sum((v / safe) ** 2, axis=axis, keepdims=True)) * scale
    return out.squeeze(axis=axis) if axis is not None else out.reshape(())[()]


def _unit_delta(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    w = np.asarray(w)
    v = np.asarray(v, dtype=w.dtype)
    nw = norm(w, axis=-1)[..., None]
    return w / nw - v / norm(v)


def direction_distance(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``||w/||w|| - v/||v||||`` (Soudry eq. 3.1); ``w`` may be a stack of iterates ``(K, d)``."""
    return norm(_unit_delta(w, v), axis=-1)


def angle_gap(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``1 - cos(w, v)`` (Soudry eq. 3.2) as ``||delta||^2 / 2``: accurate far below 1e-20."""
    return direction_distance(w, v) ** 2 / 2


def margin_gap(w: np.ndarray, v: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """``min_n z_n.v/||v|| - min_n z_n.w/||w||`` (Soudry eq. 3.3, with ``v = w_hat``).

    Computed as ``max_n (c_n - z_n.delta)`` where ``c_n = min_m z_m.v_u - z_n.v_u >= 0`` and
    ``delta = w/||w|| - v_u`` (``v_u = v/||v||``), so it stays accurate when tiny.
    """
    w = np.asarray(w)
    Z = np.asarray(Z, dtype=w.dtype)
    v = np.asarray(v, dtype=w.dtype)
    vu = v / norm(v)
    c = Z @ vu
    c = c.min() - c
    delta = _unit_delta(w, v)
    return np.max(c - delta @ Z.T, axis=-1)


@dataclass(frozen=True)
class RateFit:
    """A fitted power law ``y ~ constant * x**(-exponent)`` over ``steps in [t_min, t_max]``.

    ``x`` is ``t`` for the loss and ``log t`` for the direction quantities. ``constant`` is
    fitted with the exponent fixed at the theory value ``theory`` (median of
    ``y * x**theory``); ``exponent`` is the free least-squares slope in log-log coordinates.
    For the norm, ``exponent`` is the slope of ``||w||`` against ``log t`` (theory ``||w_hat||``).
    Deep models: ``theta_norm`` is the slope of ``log ||theta||`` against ``log log t`` (theory
    ``1/L`` for fixed steps: ``||theta||^L ~ log t``, ``constant`` its ``exp(intercept)``);
    ``normalized_margin`` fits ``gamma(t) = limit - constant / log^exponent t`` (no theory
    rate in the papers: ``theory`` is NaN). ``theory`` is NaN wherever the papers state none.
    """

    quantity: str
    variable: str
    exponent: float
    theory: float
    constant: float
    r2: float
    t_min: int
    t_max: int
    n_points: int
    limit: float = float("nan")
    log_t_range: tuple[float, float] = (float("nan"), float("nan"))


@dataclass(frozen=True)
class RateReport:
    """Fitted rates of a run against Soudry et al. Section 3 (eqs. 3.1-3.4)."""

    fits: dict[str, RateFit]

    def __getitem__(self, key: str) -> RateFit:
        return self.fits[key]

    def __str__(self) -> str:
        lines = [
            f"{'quantity':<20} {'law':<22} {'fitted':>9} {'theory':>9} {'constant':>10} "
            f"{'R^2':>7}  range"
        ]
        for f in self.fits.values():
            if f.quantity == "norm":
                law = "||w|| ~ k log t"
            elif f.quantity == "theta_norm":
                law = "||theta|| ~ c log^a t"
            elif f.quantity == "normalized_margin":
                law = f"gamma -> {f.limit:.6g} - c/log^b t"
            elif f.variable == "t":
                law = f"{f.quantity} ~ c t^-a"
            else:
                law = f"{f.quantity} ~ c/log^b t"
            span = (
                f"t in [{_t_text(f.t_min)}, {_t_text(f.t_max)}]"
                if np.isfinite(f.t_max)
                else f"log t in [{f.log_t_range[0]:.6g}, {f.log_t_range[1]:.6g}]"
            )
            lines.append(
                f"{f.quantity:<20} {law:<22} {f.exponent:9.4f} {f.theory:9.4f} "
                f"{f.constant:10.4g} {f.r2:7.4f}  {span} ({f.n_points} pts)"
            )
        return "\n".join(lines)


def _linfit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    A = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    ss = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(resid**2) / ss if ss > 0 else 1.0
    return float(coef[0]), float(coef[1]), float(r2)


def _t_text(t: int | float) -> str:
    return str(t) if isinstance(t, int) else f"{t:.6g}"


def _t_value(log_t: float) -> int | float:
    """``t`` from ``log t``: an int step when it is a whole number below 2**53, else a float
    (``inf`` past 1.8e308)."""
    with np.errstate(over="ignore"):
        t = float(np.exp(log_t))
    if t < 2.0**53 and abs(t - round(t)) <= 1e-9 * max(1.0, t):
        return int(round(t))
    return t


def fit_rates(history, t_min: int | None = None, t_max: int | None = None) -> RateReport:
    """Fit the recorded history against the rates of Soudry et al. Section 3.

    ``log L ~ log c - a log t`` (eq. 3.4, a = 1); ``||w|| ~ k log t + b`` (eq. 2.3,
    k = ||w_hat||); angle gap ``~ c / log^b t`` (eq. 3.2, b = 2); direction distance and margin
    gap ``~ c / log^b t`` (eqs. 3.1, 3.3, b = 1). The default range is the last half of the
    run on the log scale, ``t in [sqrt(T), T]`` (and ``t >= 10``).

    Parameters
    ----------
    history : History
        A recorded run (``Run.history``).
    t_min, t_max : int, optional
        The range of steps used in the fit. A gradient flow's history whose times passed
        1.8e308 (no ``step`` column) is fitted in ``log_time``; its ``t_min``, ``t_max`` are
        then floats (``inf`` past float64; the report prints the ``log t`` range).
    """
    if "log_time" not in history:  # GD: integer steps
        steps = np.asarray(history["step"], dtype=np.float64)
        if t_max is None:
            t_max = int(steps.max())
        if t_min is None:
            t_min = int(max(10, np.sqrt(t_max)))
        sel = (steps >= t_min) & (steps <= t_max)
        with np.errstate(divide="ignore"):
            logt_all = np.log(steps)
    else:  # a flow: times up to 1e300 and beyond (log t is exact, t may not be a number)
        logt_all = np.asarray(history["log_time"], dtype=np.float64)
        hi = float(logt_all.max()) if t_max is None else math.log(t_max)  # (ints of any size)
        lo = max(math.log(10.0), hi / 2) if t_min is None else math.log(t_min)
        t_min, t_max = _t_value(lo), _t_value(hi)
        sel = (logt_all >= lo) & (logt_all <= hi)
    if sel.sum() < 3:
        raise ValueError(
            f"need at least 3 recorded steps in [{t_min}, {t_max}] to fit rates; "
            f"got {int(sel.sum())}. Run longer or pass t_min."
        )
    logt = logt_all[sel]
    t = np.array([_t_value(v) for v in logt], dtype=np.float64)
    fits: dict[str, RateFit] = {}

    def add(name, variable, y, theory, log_y=None):
        if log_y is None:
            y = np.asarray(y, dtype=np.float64)[sel]
            ok = np.isfinite(y) & (y > 0)
            with np.errstate(divide="ignore"):
                log_y = np.log(np.where(ok, y, 1.0))
        else:  # the log of y given (the loss: exact where y underflows)
            log_y = np.asarray(log_y, dtype=np.float64)[sel]
            ok = np.isfinite(log_y)
        if ok.sum() < 3:
            return
        log_x = logt[ok] if variable == "t" else np.log(logt[ok])
        slope, _, r2 = _linfit(log_x, log_y[ok])
        with np.errstate(over="ignore", under="ignore"):
            constant = float(np.exp(np.median(log_y[ok] + theory * log_x)))
        fits[name] = RateFit(
            name,
            variable,
            -slope,
            theory,
            constant,
            r2,
            _t_value(logt[ok][0]),
            _t_value(logt[ok][-1]),
            int(ok.sum()),
            log_t_range=(float(logt[ok][0]), float(logt[ok][-1])),
        )

    if "log_loss" in history:  # (not recorded once -log L overflows float64)
        add("loss", "t", None, 1.0, log_y=history["log_loss"])
    if "angle_gap" in history:
        add("angle_gap", "log t", history["angle_gap"], 2.0)
        add("direction_distance", "log t", history["direction_distance"], 1.0)
        add("margin_gap", "log t", history["margin_gap"], 1.0)
    if "theorem4_residual_norm" in history:
        # Theorem 4: r(t) = w(t) - w_hat log t - w_tilde -> 0, at no stated rate
        add("theorem4_residual", "log t", history["theorem4_residual_norm"], np.nan)
    w_norm = np.asarray(history["norm"], dtype=np.float64)[sel] if "norm" in history else None
    if w_norm is not None and np.all(np.isfinite(w_norm)):
        slope, intercept, r2 = _linfit(logt, w_norm)
        ref_norm = float(history.meta.get("reference_norm", np.nan))
        fits["norm"] = RateFit(
            "norm", "log t", slope, ref_norm, intercept, r2, _t_value(logt[0]),
            _t_value(logt[-1]), int(sel.sum()), log_t_range=(float(logt[0]), float(logt[-1])),
        )  # fmt: skip
    if "log_theta_norm" in history and "normalized_margin_theta" in history:
        _fit_deep(history, sel, t, logt, fits)
    return RateReport(fits)


def _fit_deep(history, sel, t, logt, fits) -> None:
    """Parameter-space asymptotics of a homogeneous model (Lyu-Li style margin growth)."""
    log_norm = np.asarray(history["log_theta_norm"], dtype=np.float64)[sel]
    ok = np.isfinite(log_norm) & (logt > 1.0)
    depth = history.meta.get("depth")
    theory = 1.0 / depth if depth else np.nan
    if history.meta.get("step_rule", "fixed") != "fixed":
        theory = np.nan  # normalized / loss-scaled steps grow ||theta|| faster
    if ok.sum() >= 3:
        slope, intercept, r2 = _linfit(np.log(logt[ok]), log_norm[ok])
        fits["theta_norm"] = RateFit(
            "theta_norm", "log t", slope, theory, float(np.exp(intercept)), r2,
            _t_value(logt[ok][0]), _t_value(logt[ok][-1]), int(ok.sum()),
            log_t_range=(float(logt[ok][0]), float(logt[ok][-1])),
        )  # fmt: skip
    gamma = np.asarray(history["normalized_margin_theta"], dtype=np.float64)[sel]
    ok = np.isfinite(gamma) & (logt > 1.0)
    if ok.sum() >= 4 and np.ptp(gamma[ok]) > 0:
        from scipy.optimize import curve_fit

        x, g = logt[ok], gamma[ok]

        def law(x, limit, c, b):
            return limit - c * x ** (-b)

        try:
            p0 = (g[-1] + abs(g[-1] - g[0]), abs(g[-1] - g[0]) * x[0], 1.0)
            (limit, c, b), _ = curve_fit(law, x, g, p0=p0, maxfev=20000)
        except (RuntimeError, ValueError):
            return
        resid = g - law(x, limit, c, b)
        ss = np.sum((g - g.mean()) ** 2)
        fits["normalized_margin"] = RateFit(
            "normalized_margin", "log t", float(b), np.nan, float(c),
            float(1 - np.sum(resid**2) / ss) if ss > 0 else 1.0,
            _t_value(logt[ok][0]), _t_value(logt[ok][-1]), int(ok.sum()), float(limit),
            (float(logt[ok][0]), float(logt[ok][-1])),
        )  # fmt: skip
