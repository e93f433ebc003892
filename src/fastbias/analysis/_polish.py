"""Newton's method on the KKT equations of Problem 2, to turn a GD iterate into the KKT point
it approaches.

GD only approaches its limit direction (Vardi Theorem 2.1) at a rate like ``1/log t``, and a
point that is merely close to a KKT point has first-order improvements of the size of its KKT
residual, which would hide the second-order structure the optimality analysis looks at. With
the active set ``A`` and the activation pattern fixed, the KKT conditions

    theta - sum_{i in A} lambda_i grad gamma_i(theta) = 0,      gamma_i(theta) = 1  (i in A)

are a square polynomial system; Newton's method (least-squares steps, so continuous families of
KKT points are fine) converges to the nearby solution whatever its type (minimum or saddle),
so the analysed point is the limit of the GD direction and not some better point nearby.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._problem import Problem
from .kkt import _nnls, kkt_nnls

__all__ = ["Polished", "polish", "kkt_point"]

_MOVE_WARN = 0.05


@dataclass
class Polished:
    theta: np.ndarray
    multipliers: np.ndarray
    active: np.ndarray
    masks: list | None
    converged: bool
    residual: float
    iterations: int
    message: str = ""


def _newton(prob: Problem, theta: np.ndarray, active: np.ndarray, masks, max_iter: int):
    P = prob.P
    J = prob.jac(theta, masks, active)
    lam = _nnls(J.T, theta)

    def resid(th, lm):
        Jt = prob.jac(th, masks, active)
        r1 = th - Jt.T @ lm
        r2 = prob.margins(th, masks)[active] - 1.0
        nt = max(float(np.linalg.norm(th)), 1e-300)
        return np.concatenate([r1 / nt, r2]), Jt

    F, J = resid(theta, lam)
    fn = float(np.linalg.norm(F))
    mu = None
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        if fn < 1e-13:
            break
        Hs = prob.hessians(theta, active, masks)
        nt = max(float(np.linalg.norm(theta)), 1e-300)
        K11 = np.eye(P) - np.tensordot(lam, Hs, axes=1)
        K = np.block([[K11 / nt, -J.T / nt], [J, np.zeros((active.size, active.size))]])
        # Levenberg-Marquardt: robust where the KKT points form a continuum (singular K)
        KtK = K.T @ K
        g = K.T @ F
        if mu is None:
            mu = 1e-6 * max(float(np.trace(KtK)) / KtK.shape[0], 1e-300)
        improved = False
        for _ in range(40):
            step = -np.linalg.solve(KtK + mu * np.eye(KtK.shape[0]), g)
            th_new = theta + step[:P]
            lm_new = lam + step[P:]
            F_new, J_new = resid(th_new, lm_new)
            fn_new = float(np.linalg.norm(F_new))
            if fn_new < fn:
                improved = True
                mu = max(mu / 10.0, 1e-300)
                break
            mu *= 10.0
        if not improved:
            break
        theta, lam, F, J, fn = th_new, lm_new, F_new, J_new, fn_new
    return theta, lam, fn, it


def polish(
    prob: Problem,
    theta: np.ndarray,
    *,
    active_tol: float = 0.05,
    max_iter: int = 150,
    rounds: int = 10,
) -> Polished:
    """The KKT point near ``theta`` (scaled to ``min margin = 1``) on ``theta``'s activation
    pattern, with an active-set loop (drop negative multipliers, add violated constraints)."""
    masks = prob.sign_masks(theta)
    gam = prob.margins(theta)
    cand = np.flatnonzero(gam <= 1.0 + active_tol)
    J = prob.jac(theta, masks, cand)
    lam0 = kkt_nnls(J.T, theta, gam[cand], prob.L)
    active = cand[lam0 > 1e-6 * max(float(lam0.max(initial=0.0)), 1e-300)]
    if active.size == 0:
        active = np.array([int(np.argmin(gam))])
    msg = ""
    for _ in range(rounds):
        th, lam, fn, it = _newton(prob, theta.copy(), active, masks, max_iter)
        if fn > 1e-10:
            if active.size > 1:  # too many equalities: release the loosest constraint
                active = np.delete(active, int(np.argmax(gam[active])))
                continue
            msg = f"Newton on the KKT equations stalled at residual {fn:.2e}"
            return Polished(theta, np.zeros(prob.N), active, masks, False, fn, it, msg)
        if not prob.consistent(th, masks, 1e-8):
            return Polished(theta, np.zeros(prob.N), active, masks, False, fn, it,
                            "Newton left the activation pattern of theta")  # fmt: skip
        scale = max(float(np.abs(lam).max(initial=0.0)), 1e-300)
        if np.any(lam < -1e-9 * scale):
            active = np.delete(active, int(np.argmin(lam)))
            if active.size == 0:
                break
            continue
        gam_new = prob.margins(th)
        outside = np.setdiff1d(np.arange(prob.N), active)
        if outside.size and gam_new[outside].min() < 1.0 - 1e-10:
            active = np.sort(np.append(active, outside[np.argmin(gam_new[outside])]))
            continue
        low = float(gam_new.min())
        c = low ** (-1.0 / prob.L)
        for _ in range(8):
            if prob.margins(c * th).min() >= 1.0:
                break
            c *= 1.0 + 4 * np.finfo(float).eps
        mult = np.zeros(prob.N)
        mult[active] = np.maximum(lam, 0.0) * c ** (2 - prob.L)
        return Polished(c * th, mult, active, masks, True, fn, it, msg)
    return Polished(theta, np.zeros(prob.N), active, masks, False, np.inf, 0,
                    "no active set gave non-negative multipliers")  # fmt: skip


def kkt_point(prob: Problem, theta_in: np.ndarray, *, polish_it: bool, active_tol: float,
              kink_tol: float) -> tuple[np.ndarray, bool, float, str]:  # fmt: skip
    """The point to analyse: ``theta_in`` scaled to ``min margin = 1`` and, unless it already is
    an exact KKT point, polished. Returns ``(theta, polished, moved, message)``; warns when the
    result is not a KKT point."""
    import warnings

    from .kkt import _scale_to_margin_one, kkt_at

    ths, _ = _scale_to_margin_one(prob, theta_in)
    theta0, polished, message = ths, False, ""
    if polish_it and not kkt_at(prob, ths, 1e-9, kink_tol).residual < 1e-11:
        pol = polish(prob, ths, active_tol=active_tol)
        n_in, n_pol = float(ths @ ths), float(pol.theta @ pol.theta)
        if pol.converged and n_pol <= n_in * (1.0 + 1e-9):
            theta0, polished = pol.theta, True
        elif pol.converged:
            # the normalized margin increases along GD towards its limit (Lyu and Li 2019), so
            # a KKT point with a smaller normalized margin than theta is not that limit
            message = (
                f"polishing reached a KKT point with a larger norm ({n_pol:.10g} > "
                f"{n_in:.10g} at unit margin), so not the limit of GD: the active set of theta "
                "is not yet the final one; "
            )
        else:
            message = f"polishing failed ({pol.message}); "
    res = kkt_at(prob, theta0, 1e-8, kink_tol)
    if not (res.residual < 1e-6 and res.complementarity < 1e-6):
        why = message.rstrip("; ")
        message += (
            f"theta is not a KKT point of Problem 2 (stationarity residual {res.residual:.2e}), "
            "so the verdict is about theta itself, not about the KKT point GD converges to; "
        )
        warnings.warn(
            f"theta is not a KKT point of Problem 2 (stationarity residual {res.residual:.2e}"
            + (f"; {why}" if why else "")
            + "): the verdict describes theta itself. Run GD longer (the loss-scaled step rule "
            "converges in direction fastest) or raise active_tol.",
            stacklevel=3,
        )
    n0 = float(np.linalg.norm(theta0))
    moved = float(np.linalg.norm(theta0 / n0 - ths / np.linalg.norm(ths)))
    if polished and moved > _MOVE_WARN:
        message += f"polishing moved the direction by {moved:.3g}; "
        warnings.warn(
            f"polishing moved theta's direction by {moved:.3g} (> {_MOVE_WARN}) to reach a KKT "
            "point: GD may be far from its limit, and the analysed KKT point may not be the one "
            "it converges to. Run GD longer (the loss-scaled step rule converges fastest).",
            stacklevel=3,
        )
    return theta0, polished, moved, message
