"""KKT conditions of the parameter-space max-margin problem (Vardi eq. 2; Gunasekar eq. 14-16).

Lyu and Li (2019) / Ji and Telgarsky (2020) (Vardi Theorem 2.1) and Gunasekar et al. (2018,
Theorem 4) show that gradient descent on a homogeneous model converges in direction to a KKT
point of

    min 1/2 ||theta||^2   s.t.   y_i Phi(theta; x_i) >= 1,                  (Vardi eq. 2)

i.e. ``theta = sum_i lambda_i y_i h_i`` with ``lambda_i >= 0``, ``lambda_i = 0`` off the active
set and ``h_i`` in the Clarke subdifferential of ``Phi(.; x_i)`` (eq. 16 of Gunasekar et al.,
where ``h_i = grad Phi``). :func:`kkt` checks this for a given direction ``theta``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._problem import Kink, Problem

__all__ = ["KKTResult", "kkt"]

_MAX_KINKS_PER_SAMPLE = 10


@dataclass(frozen=True, eq=False)
class KKTResult:
    """Result of :func:`kkt`.

    Attributes
    ----------
    theta : ndarray
        ``theta`` scaled onto the constraint set: ``min_i y_i Phi(theta; x_i) = 1``.
    scale : float
        The factor applied to the input: ``theta = scale * theta_in``.
    multipliers : ndarray of shape (N,)
        ``lambda_i >= 0``, zero off the active set.
    active : ndarray of int
        Samples with margin ``<= 1 + active_tol`` (the constraints allowed a multiplier).
    margins : ndarray of shape (N,)
        ``y_i Phi(theta; x_i)`` at the scaled ``theta``.
    residual : float
        Stationarity ``||theta - sum_i lambda_i y_i h_i|| / ||theta||`` with the best Clarke
        subgradients ``h_i``.
    complementarity : float
        ``max_i lambda_i (margin_i - 1) / ||theta||^2`` (0 when only exactly tight constraints
        carry multipliers).
    gradients : ndarray of shape (N, P)
        ``y_i h_i``: the subgradients used (the multiplier-weighted average of the vertices for
        samples with kinks, ``y_i grad Phi`` otherwise).
    kinks : tuple of Kink
        Hidden neurons with zero input on an active sample, with the chosen ``sigma'(0)``.
    """

    theta: np.ndarray
    scale: float
    multipliers: np.ndarray
    active: np.ndarray
    margins: np.ndarray
    residual: float
    complementarity: float
    gradients: np.ndarray = field(repr=False)
    kinks: tuple = ()

    def holds(self, tol: float = 1e-6) -> bool:
        """Whether stationarity and complementarity hold within ``tol``."""
        return bool(self.residual <= tol and self.complementarity <= tol)


def _scale_to_margin_one(prob: Problem, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """``(c theta, c)`` with ``min_i y_i Phi(c theta; x_i) = 1`` (>= 1 after rounding)."""
    unit = 1.0 / float(np.linalg.norm(theta))  # homogeneity: work with the unit direction
    theta = theta * unit
    gam = prob.margins(theta)
    low = float(gam.min())
    if not low > 0:
        worst = int(np.argmin(gam))
        raise ValueError(
            f"theta does not classify every sample correctly: y_i Phi(theta; x_i) = {low:.4g} "
            f"<= 0 for sample {worst}, so no scaling of theta satisfies the constraints of "
            "Problem 2 (Vardi eq. 2). Pass a theta with positive margins (e.g. after training)."
        )
    c = low ** (-1.0 / prob.L)
    # guard against rounding: the scaled margins must be >= 1
    for _ in range(8):
        if prob.margins(c * theta).min() >= 1.0:
            break
        c *= 1.0 + 4 * np.finfo(float).eps
    return c * theta, float(c * unit)


def _vertex_columns(prob: Problem, theta: np.ndarray, active: np.ndarray, kinks: list[Kink]):
    """Columns ``y_i grad Phi^v(theta; x_i)`` for every active sample i and every vertex v of
    its kinks' ``sigma'(0) in {0, 1}``; ``owner[c]`` is the sample, ``verts[c]`` the vertex."""
    by_sample: dict[int, list[Kink]] = {}
    for k in kinks:
        by_sample.setdefault(k.sample, []).append(k)
    cols, owner, verts = [], [], []
    if prob.relu:  # the model's own sigma'(0) for samples without kinks
        base = prob.y[:, None] * prob.model.gradient(theta, prob.X)
    else:
        base = prob.jac(theta)
    for i in active:
        ks = by_sample.get(int(i), [])
        if not ks:
            cols.append(base[i])
            owner.append(int(i))
            verts.append(())
            continue
        if len(ks) > _MAX_KINKS_PER_SAMPLE:
            raise ValueError(
                f"sample {int(i)} has {len(ks)} hidden neurons with zero input; enumerating "
                f"2**{len(ks)} Clarke subgradient vertices is too many. Pass a smaller kink_tol."
            )
        for v in itertools.product((0.0, 1.0), repeat=len(ks)):
            masks = prob.sign_masks(theta, ks, v)
            cols.append(prob.jac(theta, masks, [i])[0])
            owner.append(int(i))
            verts.append(v)
    return np.array(cols).reshape(len(cols), prob.P), np.array(owner, dtype=int), verts, by_sample


def _nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    if A.shape[1] == 0:
        return np.zeros(0)
    try:
        x, _ = nnls(A, b, maxiter=50 * max(A.shape))
    except RuntimeError:  # pragma: no cover - iteration limit
        x = np.maximum(np.linalg.lstsq(A, b, rcond=None)[0], 0.0)
    return x


def kkt_nnls(G: np.ndarray, theta: np.ndarray, margins: np.ndarray, L: int) -> np.ndarray:
    """Multipliers ``lam >= 0`` minimizing the KKT violation
    ``||theta - G lam||^2 + (L/||theta|| sum_c lam_c (margin_c - 1))^2``: stationarity plus
    complementarity (``sum_c lam_c ~ ||theta||^2 / L`` by Euler's identity, so the second term
    is ``||theta||`` times the multiplier-weighted excess margin). Near a KKT point this puts
    the multipliers on the constraints that are actually tight."""
    nt = float(np.linalg.norm(theta))
    pen = (np.asarray(margins, dtype=np.float64) - 1.0) * (L / max(nt, 1e-300))
    A = np.vstack([G, pen[None, :]])
    return _nnls(A, np.append(theta, 0.0))


def kkt_at(prob: Problem, theta: np.ndarray, active_tol: float, kink_tol: float) -> KKTResult:
    """:func:`kkt` for a theta already scaled to ``min margin = 1`` (no rescaling)."""
    gam = prob.margins(theta)
    active = np.flatnonzero(gam <= 1.0 + active_tol)
    kinks = [k for k in prob.kinks(theta, kink_tol) if k.sample in set(active.tolist())]
    cols, owner, verts, by_sample = _vertex_columns(prob, theta, active, kinks)
    mu = kkt_nnls(cols.T, theta, gam[owner], prob.L)
    lam = np.zeros(prob.N)
    np.add.at(lam, owner, mu)
    if prob.relu:  # the model's own sigma'(0) where no subgradient was chosen
        grads = prob.y[:, None] * prob.model.gradient(theta, prob.X)
    else:
        grads = prob.jac(theta)
    chosen = []
    for i, ks in by_sample.items():
        sel = owner == i
        w = mu[sel]
        vs = np.array([verts[c] for c in np.flatnonzero(sel)])
        if w.sum() > 0:
            grads[i] = (w @ cols[sel]) / w.sum()
            slopes = (w @ vs) / w.sum()
        else:
            slopes = np.full(len(ks), np.nan)
        chosen += [
            Kink(k.sample, k.layer, k.neuron, float(s)) for k, s in zip(ks, slopes, strict=True)
        ]
    tn = float(np.linalg.norm(theta))
    resid = float(np.linalg.norm(theta - cols.T @ mu)) / tn if tn > 0 else np.inf
    comp = float(np.max(lam * np.abs(gam - 1.0))) / tn**2 if tn > 0 else np.inf
    return KKTResult(
        theta=theta,
        scale=1.0,
        multipliers=lam,
        active=active,
        margins=gam,
        residual=resid,
        complementarity=comp,
        gradients=grads,
        kinks=tuple(chosen),
    )


def kkt(
    model: Any,
    theta: Any,
    X: Any,
    y: Any = None,
    *,
    active_tol: float = 0.05,
    kink_tol: float = 1e-9,
) -> KKTResult:
    """KKT multipliers of Problem 2 (Vardi eq. 2; Gunasekar eq. 14) at the direction ``theta``.

    ``theta`` is scaled so that ``min_i y_i Phi(theta; x_i) = 1``; the multipliers solve the
    non-negative least-squares problem ``min ||theta - sum_i lambda_i y_i h_i||^2 + (L/||theta||
    sum_i lambda_i (margin_i - 1))^2``, ``lambda >= 0``, over the samples with margin
    ``<= 1 + active_tol`` (Gunasekar eq. 16: stationarity, with complementarity as a penalty so
    that an approximate KKT point gets its multipliers on the tight constraints).

    For ReLU networks ``h_i`` ranges over the Clarke subdifferential: every hidden neuron whose
    input on an active sample is within ``kink_tol`` (relative to ``||x_i|| prod ||W^(k)||``) of
    zero may take any ``sigma'(0)`` in [0, 1]. The NNLS runs over the gradients at all vertices
    ``sigma'(0) in {0, 1}`` of those kinks, so it picks the subgradient with the smallest
    residual (for several kinks on one sample, the convex hull of the vertex gradients contains
    the chain-rule set, which contains the Clarke subdifferential; exact for depth 2 without
    sharing).

    Parameters
    ----------
    model : fastbias.models.Model
        Any model of :mod:`fastbias.models` (``grad Phi(theta; x_i) = vjp(theta, x_i)``) or a
        :class:`~fastbias.models.Network`.
    theta : array or list of arrays
        Parameters (flat, or one array per layer); only the direction matters.
    X, y : data; ``y`` are binary labels (None: all +1).
    active_tol : float
        Margins up to ``1 + active_tol`` may carry a multiplier. GD iterates approach the KKT
        point slowly (margins of support samples differ by O(1/log t) for a fixed step), which
        the default allows for; the complementarity penalty keeps multipliers off constraints
        that are clearly not tight.
    kink_tol : float
        Relative size below which a hidden neuron's input counts as zero.

    Returns
    -------
    KKTResult
    """
    prob = Problem(model, X, y)
    th = prob.flat(theta)
    if not np.any(th):
        raise ValueError("theta is zero; Problem 2 needs a direction with positive margins.")
    for name, val in (("active_tol", active_tol), ("kink_tol", kink_tol)):
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {val!r}.")
    scaled, scale = _scale_to_margin_one(prob, th)
    res = kkt_at(prob, scaled, active_tol, kink_tol)
    return KKTResult(
        theta=res.theta,
        scale=scale,
        multipliers=res.multipliers,
        active=res.active,
        margins=res.margins,
        residual=res.residual,
        complementarity=res.complementarity,
        gradients=res.gradients,
        kinks=res.kinks,
    )
