"""Maximum margin for one layer at a time (Vardi et al. 2022, eq. 4 and Theorems 5.2-5.4).

For a layer ``l`` and the other layers fixed at ``theta``'s,

    min_{u^(l)} 1/2 ||u^(l)||^2   s.t.   y_i Phi(theta'; x_i) >= 1,             (Vardi eq. 4)

``theta'`` being ``theta`` with layer l replaced. ``Phi`` enters each layer linearly, so:

* linear networks (and every linear-predictor model): ``y_i Phi = c_i . u^(l)`` with
  ``c_i = y_i grad_{u^(l)} Phi(theta; x_i)``, and eq. 4 is the L2 hard-margin SVM on the
  ``c_i``, solved exactly (:func:`fastbias.max_margin`); Theorem 5.2 says GD's KKT point is its
  global optimum for every layer;
* ReLU networks: with the activation pattern of the neurons in layers >= l fixed, the margins
  and those neurons' inputs are linear in ``u^(l)``, so every piece of eq. 4 is a convex QP;
  ``u^(l)`` is a local optimum iff it solves the QP of every piece adjacent to it (one per
  ``sigma'(0) in {0, 1}`` choice at the neurons of layers >= l with zero input). Theorem 5.4:
  without such kinks there is one piece and the KKT point is a local optimum; Theorem 5.3: with
  kinks it may not be. For depth-2 networks and the first layer, the global optimum is the best
  QP over all realizable activation patterns (enumerated when small).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import SolverError
from ..models.network import Network
from ._global import _realizable
from ._polish import kkt_point
from ._problem import Kink, Problem
from .optimality import Witness

__all__ = ["LayerMarginResult", "layer_margin"]

_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True, eq=False)
class LayerMarginResult:
    """Result of :func:`layer_margin`.

    Attributes
    ----------
    verdict : {"global", "local", "not local"}
        For ``theta``'s layer as a solution of eq. 4.
    layer : int
        1-based.
    theta : ndarray
        The analysed KKT point (polished, scaled to ``min margin = 1``), flat.
    params : ndarray
        Its layer ``u^(l)``.
    norm : float
        ``||u^(l)||``.
    optimum : ndarray or None
        The global optimum of eq. 4 where computed (linear networks, the last layer, depth-2
        first layers), else the best piece optimum.
    optimum_norm : float
        ``||optimum||`` (NaN if none).
    pieces : tuple of (tuple, float)
        Per adjacent piece (``sigma'(0)`` vertex at each kink): the piece QP's optimal
        ``||u||``.
    witnesses : tuple of Witness
        For ``"not local"``: feasible layers ``u'`` within each radius of ``u^(l)`` with a
        smaller norm (``theta`` holds the whole parameter vector with layer l replaced).
    message : str
    """

    verdict: str
    layer: int
    theta: np.ndarray = field(repr=False)
    params: np.ndarray = field(repr=False)
    norm: float
    optimum: np.ndarray | None = field(default=None, repr=False)
    optimum_norm: float = float("nan")
    pieces: tuple = ()
    witnesses: tuple = ()
    message: str = ""


def _qp(C: np.ndarray, S: np.ndarray):
    """``min 1/2||u||^2 s.t. C u >= 1, S u >= 0`` with Clarabel; ``(value, u)`` or ``(inf,
    None)`` if infeasible."""
    import clarabel
    import scipy.sparse as sp

    from ._global import _settings

    n = C.shape[1]
    A = np.vstack([-C, -S]) if S.shape[0] else -C
    b = np.concatenate([-np.ones(C.shape[0]), np.zeros(S.shape[0])])
    sol = clarabel.DefaultSolver(
        sp.identity(n, format="csc"), np.zeros(n), sp.csc_matrix(A), b,
        [clarabel.NonnegativeConeT(A.shape[0])], _settings(clarabel),
    ).solve()  # fmt: skip
    status = str(sol.status)
    if "Infeasible" in status:
        return np.inf, None
    if status not in ("Solved", "AlmostSolved"):
        raise SolverError(f"Clarabel did not solve the per-layer QP: status {status}.")
    u = np.asarray(sol.x)
    return float(u @ u), u


def _layer_rows(prob: Problem, theta: np.ndarray, layer: int, masks, sl: slice):
    """Margin rows ``c_i`` and sign rows ``s * grad_u a`` (neurons in layers >= l, every
    sample) of the piece ``masks``, restricted to layer ``layer``'s parameters."""
    C = prob.jac(theta, masks)[:, sl]
    if not prob.relu:
        return C, np.zeros((0, C.shape[1]))
    ks = []
    for h in range(layer, prob.L):
        for i in range(prob.N):
            for j in range(prob.model.dims[h]):
                ks.append(Kink(i, h, j))
    G = prob.preact_jac(theta, ks, masks)[:, sl]
    sign = np.array([1.0 if masks[k.layer - 1][k.sample, k.neuron] > 0.5 else -1.0 for k in ks])
    return C, sign[:, None] * G


def _segment_witnesses(prob, theta0, sl, u0, target, radii, source):
    out = []
    n0 = float(np.linalg.norm(u0))
    dirn = target - u0
    dn = float(np.linalg.norm(dirn))
    if dn == 0:
        return out
    dirn = dirn / dn
    for r in radii:
        r_abs = r * n0
        t = min(r_abs, dn)
        for _ in range(40):
            u = u0 + t * dirn
            th = theta0.copy()
            th[sl] = u
            gam = prob.margins(th)
            if gam.min() > 0:
                c = 1.0 / float(gam.min())  # eq. 4 is 1-homogeneous in u^(l)
                for _ in range(8):
                    th[sl] = c * u
                    gam = prob.margins(th)
                    if gam.min() >= 1.0:
                        break
                    c *= 1.0 + 4 * _EPS
                w = th[sl]
                dist = float(np.linalg.norm(w - u0))
                gain = n0 * n0 - float(w @ w)
                if gam.min() >= 1.0 and dist <= r_abs and gain > 256 * _EPS * n0 * n0:
                    out.append(
                        Witness(
                            r_abs,
                            dist,
                            th.copy(),
                            float(np.linalg.norm(w)),
                            gain,
                            float(gam.min()),
                            source,
                        )  # fmt: skip
                    )
                    break
            t *= 0.5
    return out


def layer_margin(
    model: Any,
    theta: Any,
    X: Any,
    y: Any = None,
    layer: int = 1,
    *,
    radii: Any = (1e-1, 1e-2, 1e-3, 1e-4),
    polish: bool = True,
    tol: float = 1e-7,
    active_tol: float = 0.05,
    kink_tol: float = 1e-7,
    max_pieces: int = 256,
    max_combinations: int = 4096,
) -> LayerMarginResult:
    """Is ``theta``'s layer ``layer`` an optimum of the per-layer problem (Vardi eq. 4)?

    Linear networks: eq. 4 is an SVM on ``c_i = y_i grad_{u^(l)} Phi``, solved exactly and
    compared with ``theta``'s layer (Theorem 5.2: "global"). ReLU networks: the exact local
    check over the adjacent pieces (Theorems 5.3-5.4) and, for the last layer or the first
    layer of a depth-2 network, the global optimum. ``theta`` is first polished onto the KKT
    point of Problem 2 it approaches (see :func:`fastbias.analysis.optimality`).

    Parameters
    ----------
    model, theta, X, y : as in :func:`fastbias.analysis.optimality`.
    layer : int
        1-based layer index l in [1, depth].
    radii, polish, tol, active_tol, kink_tol, max_pieces : as in
        :func:`~fastbias.analysis.optimality` (radii relative to ``||u^(l)||``).
    max_combinations : int
        Budget of activation patterns enumerated for the global optimum of a depth-2 ReLU
        network's first layer.

    Returns
    -------
    LayerMarginResult
    """
    prob = Problem(model, X, y)
    if (
        not isinstance(layer, (int, np.integer))
        or isinstance(layer, bool)
        or not (1 <= layer <= prob.L)
    ):
        raise ValueError(f"layer must be an integer in [1, {prob.L}]; got {layer!r}.")
    radii = np.sort(np.asarray(radii, dtype=np.float64).ravel())[::-1]
    if radii.size == 0 or not np.all(np.isfinite(radii)) or np.any(radii <= 0):
        raise ValueError(f"radii must be positive numbers; got {radii!r}.")
    th_in = prob.flat(theta)
    if not np.any(th_in):
        raise ValueError("theta is zero; Problem 2 needs a direction with positive margins.")
    theta0, _, _, message = kkt_point(
        prob, th_in, polish_it=polish, active_tol=active_tol, kink_tol=kink_tol
    )
    sl = prob.layer_slice(layer)
    u0 = theta0[sl].copy()
    n0sq = float(u0 @ u0)
    common = dict(layer=int(layer), theta=theta0, params=u0, norm=float(np.sqrt(n0sq)))

    if not prob.relu:
        from ..references import max_margin

        C = prob.jac(theta0)[:, sl]
        sol = max_margin(C, None)
        opt = sol.coef
        val = float(opt @ opt)
        if n0sq <= val * (1.0 + tol):
            return LayerMarginResult(
                "global", optimum=opt, optimum_norm=float(np.sqrt(val)),
                message=message + "the layer solves eq. 4, an L2 SVM on c_i = y_i grad_u Phi "
                "(Theorem 5.2)", **common,
            )  # fmt: skip
        ws = _segment_witnesses(prob, theta0, sl, u0, opt, radii, "segment to the SVM solution")
        verdict = "not local" if len(ws) == radii.size else "local"
        return LayerMarginResult(
            verdict, optimum=opt, optimum_norm=float(np.sqrt(val)), witnesses=tuple(ws),
            message=message + f"eq. 4 is convex with optimum {val:.6g} < ||u||^2 = {n0sq:.6g}",
            **common,
        )  # fmt: skip

    # ReLU: pieces around u0 from the kinks in layers >= l
    kinks = [k for k in prob.kinks(theta0, kink_tol) if k.layer >= layer]
    n_k = len(kinks)
    if n_k == 0:
        vertex_sets = [()]
    elif 2**n_k <= max_pieces:
        vertex_sets = list(itertools.product((0.0, 1.0), repeat=n_k))
    else:
        rng = np.random.default_rng(0)
        vertex_sets = [tuple(rng.integers(0, 2, n_k).astype(float)) for _ in range(max_pieces)]
    pieces, witnesses, best = [], [], (np.inf, None)
    for values in vertex_sets:
        masks = prob.sign_masks(theta0, kinks, values)
        C, S = _layer_rows(prob, theta0, layer, masks, sl)
        val, u = _qp(C, S)
        pieces.append((tuple(float(v) for v in values), float(np.sqrt(val))))
        if u is not None and val < best[0]:
            best = (val, u)
        if u is not None and val < n0sq * (1.0 - tol) and not witnesses:
            witnesses = _segment_witnesses(
                prob, theta0, sl, u0, u, radii,
                f"segment to the optimum of the piece {tuple(float(v) for v in values)}",
            )  # fmt: skip
    if len(witnesses) == radii.size:
        return LayerMarginResult(
            "not local", optimum=best[1], optimum_norm=float(np.sqrt(best[0])),
            pieces=tuple(pieces), witnesses=tuple(witnesses),
            message=message + "a convex piece of eq. 4 next to the layer has a better solution",
            **common,
        )  # fmt: skip
    glob = None
    if layer == prob.L:
        glob = best  # no activation depends on the last layer: eq. 4 is one convex QP
    elif isinstance(prob.model, Network) and prob.L == 2 and layer == 1:
        glob = _first_layer_global(prob, theta0, sl, max_combinations)
    if glob is not None and glob[1] is not None and n0sq <= glob[0] * (1.0 + tol):
        return LayerMarginResult(
            "global", optimum=glob[1], optimum_norm=float(np.sqrt(glob[0])),
            pieces=tuple(pieces), message=message + "the layer solves eq. 4 globally", **common,
        )  # fmt: skip
    how = "the layer solves the convex QP of every adjacent piece of eq. 4 (Theorem 5.4)"
    if glob is not None and glob[1] is not None:
        how += f"; not global: eq. 4 has optimum {glob[0]:.6g} < ||u||^2 = {n0sq:.6g}"
        best = glob
    return LayerMarginResult(
        "local", optimum=best[1], optimum_norm=float(np.sqrt(best[0])), pieces=tuple(pieces),
        message=message + how, **common,
    )  # fmt: skip


def _first_layer_global(prob: Problem, theta0: np.ndarray, sl: slice, max_combinations: int):
    """Global optimum of eq. 4 for the first layer of a depth-2 ReLU network: the best convex
    QP over the realizable activation patterns of the hidden neurons (None if too many)."""
    net = prob.model
    g1 = net.patterns[0]
    options = []
    total = 1
    for j in range(g1.shape[0]):
        cols = np.flatnonzero(g1[j] >= 0)
        Xs = prob.X[:, cols]
        pats = [
            np.array(bits)
            for bits in itertools.product((False, True), repeat=prob.N)
            if not any(bits) or _realizable(Xs, np.array(bits))
        ]
        options.append(pats)
        total *= len(pats)
        if total > max_combinations:
            return None
    best = (np.inf, None)
    for combo in itertools.product(*options):
        masks = [np.array(combo, dtype=np.float64).T]
        C, S = _layer_rows(prob, theta0, 1, masks, sl)
        val, u = _qp(C, S)
        if u is not None and val < best[0]:
            best = (val, u)
    return best
