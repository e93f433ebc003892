"""Is the KKT point GD converges to a global optimum, a local optimum, or neither?

Vardi, Shamir and Srebro (2022) ask whether the KKT point of

    min 1/2 ||theta||^2   s.t.   y_i Phi(theta; x_i) >= 1                     (Problem 2)

that gradient descent converges to in direction (their Theorem 2.1; Gunasekar et al. 2018,
Theorem 4) is an actual optimum. :func:`optimality` answers for a given ``theta`` with a verdict
and the evidence behind it:

* ``"not local"``: for each radius of a decreasing sequence, a feasible ``theta'`` within that
  distance of ``theta`` with ``||theta'|| < ||theta||``. Candidate directions come from the
  first- and second-order analysis of every smooth piece of Problem 2 around ``theta`` (ReLU
  networks are piecewise multilinear: one piece per choice of ``sigma'(0) in {0, 1}`` at every
  neuron with zero input); each witness is checked with the true network and rescaled exactly
  onto the constraint set (``Phi`` is L-homogeneous: ``theta'`` is better iff its normalized
  margin ``min_i y_i Phi(theta'; x_i) / ||theta'||^L`` is larger).
* ``"global"``: the certificate the paper's argument gives (:mod:`._global`): the L2 SVM for
  fully connected linear networks (Theorem 3.1), the convex reformulation over
  ``u_j = v_j w_j`` for depth-2 linear networks without sharing (Theorem 4.2), activation
  pattern enumeration for small depth-2 ReLU networks without sharing.
* ``"local"``: no witness exists at first order (an LP per piece), the second-order condition
  on the critical cone of every piece (sufficient when the minimum curvature is positive),
  and a failed randomized local search for a witness.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._global import GlobalCertificate, certificate
from ._polish import kkt_point
from ._problem import Kink, Problem
from .kkt import KKTResult, _nnls, kkt_at

__all__ = ["Witness", "PieceCheck", "OptimalityResult", "optimality"]

_EPS = float(np.finfo(float).eps)


@dataclass(frozen=True, eq=False)
class Witness:
    """A feasible point of Problem 2 close to the analysed ``theta`` with a smaller norm.

    ``radius``: the ball (absolute) it was asked to lie in; ``distance``: ``||theta' - theta||``
    (``<= radius``); ``theta``: the point (flat), with ``min_i y_i Phi(theta'; x_i) >= 1``;
    ``norm``: ``||theta'||``; ``gain``: ``||theta||^2 - ||theta'||^2 > 0``; ``source``: how
    the direction was found.
    """

    radius: float
    distance: float
    theta: np.ndarray = field(repr=False)
    norm: float
    gain: float
    min_margin: float
    source: str


@dataclass(frozen=True, eq=False)
class PieceCheck:
    """The local analysis of one smooth piece of Problem 2 around ``theta``.

    ``slopes``: the ``sigma'(0)`` vertex (0 or 1) at each kink (empty when smooth);
    ``first_order``: the optimal value of the LP ``max tau`` over directions ``d`` in the piece
    (``|d|_inf <= 1``) increasing every active normalized margin by ``tau`` (> 0 means a
    first-order witness); ``kkt_residual``: stationarity residual on the piece (with multipliers
    for the piece's sign constraints); ``min_curvature``: ``min d^T H d`` over unit ``d`` in the
    critical cone (H the Hessian of the Lagrangian; > 0 is the second-order sufficient
    condition, < 0 gives a second-order witness direction); ``exact``: whether the minimum over
    the cone was computed exactly (face enumeration) or only approximately.
    """

    slopes: tuple
    first_order: float
    kkt_residual: float
    min_curvature: float
    exact: bool


@dataclass(frozen=True, eq=False)
class OptimalityResult:
    """Result of :func:`optimality`.

    Attributes
    ----------
    verdict : {"global", "local", "not local"}
    theta : ndarray
        The analysed KKT point, scaled to ``min_i y_i Phi = 1`` (the polished input).
    norm : float
        ``||theta||``.
    kkt : KKTResult
        The KKT multipliers and residual at ``theta`` (Clarke subgradients at kinks).
    polished : bool
        Whether Newton's method on the KKT equations moved the input to an exact KKT point.
    polish_distance : float
        Distance between the input's and ``theta``'s directions (unit vectors).
    witnesses : tuple of Witness
        For ``"not local"``: one per radius, radii decreasing.
    pieces : tuple of PieceCheck
        The smooth pieces examined (one when there are no kinks).
    kinks : tuple of Kink
        Hidden neurons with zero input at ``theta``.
    sosc : bool
        Whether every piece has no first-order direction and positive curvature on its
        critical cone (the second-order sufficient condition: a strict local minimum).
    search : dict
        The randomized local search for witnesses (radii tried, starts, best gain found).
    certificate : GlobalCertificate or None
        The global optimum where computable; for ``"local"``/``"not local"`` with a certificate,
        ``certificate.value < norm**2`` shows the point is not global.
    message : str
    elapsed : float
        Seconds spent.
    """

    verdict: str
    theta: np.ndarray = field(repr=False)
    norm: float
    kkt: KKTResult = field(repr=False)
    polished: bool
    polish_distance: float
    witnesses: tuple = ()
    pieces: tuple = ()
    kinks: tuple = ()
    sosc: bool = False
    search: dict = field(default_factory=dict)
    certificate: GlobalCertificate | None = None
    message: str = ""
    elapsed: float = 0.0

    @property
    def suboptimality(self) -> float:
        """``||theta|| / ||theta*||`` against the global optimum (NaN without a certificate)."""
        if self.certificate is None:
            return float("nan")
        return float(self.norm / np.sqrt(self.certificate.value))

    def __str__(self) -> str:
        lines = [f"verdict: {self.verdict} ({self.message})", f"||theta|| = {self.norm:.10g}"]
        lines.append(
            f"KKT residual {self.kkt.residual:.2e}; polished: {self.polished} "
            f"(moved {self.polish_distance:.2e})"
        )
        if self.certificate is not None:
            lines.append(
                f"global optimum ||theta*||^2 = {self.certificate.value:.10g} "
                f"({self.certificate.method}); ratio ||theta||/||theta*|| = "
                f"{self.suboptimality:.6g}"
            )
        for p in self.pieces:
            lines.append(
                f"piece {p.slopes}: first-order {p.first_order:.2e}, KKT residual "
                f"{p.kkt_residual:.2e}, min curvature {p.min_curvature:.4g}"
                + ("" if p.exact else " (approximate)")
            )
        for w in self.witnesses:
            lines.append(
                f"witness r={w.radius:.2e}: distance {w.distance:.2e}, ||theta'||^2 = "
                f"{w.norm**2:.15g} (gain {w.gain:.2e}), {w.source}"
            )
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# witnesses


def _make_witness(prob: Problem, theta0: np.ndarray, n0sq: float, cand: np.ndarray,
                  r_abs: float, source: str) -> Witness | None:  # fmt: skip
    """Rescale ``cand`` onto the constraint set (exactly, with the true model) and accept it
    if it is within ``r_abs`` of ``theta0`` and has a smaller norm."""
    if not np.all(np.isfinite(cand)):
        return None
    gam = prob.margins(cand)
    low = float(gam.min())
    if not low > 0:
        return None
    c = low ** (-1.0 / prob.L)
    for _ in range(8):
        gam = prob.margins(c * cand)
        if gam.min() >= 1.0:
            break
        c *= 1.0 + 4 * _EPS
    else:
        return None
    w = c * cand
    dist = float(np.linalg.norm(w - theta0))
    nsq = float(w @ w)
    gain = n0sq - nsq
    if dist <= r_abs and gain > 256 * _EPS * n0sq:
        return Witness(r_abs, dist, w, float(np.sqrt(nsq)), gain, float(gam.min()), source)
    return None


def _curve_witness(prob, theta0, n0sq, d, e, r_abs, source) -> Witness | None:
    """Points ``theta0 + t d + t^2/2 e`` for ``t = r, r/2, ...`` until one is a witness."""
    t = r_abs
    for _ in range(30):
        cand = theta0 + t * d + 0.5 * t * t * e
        w = _make_witness(prob, theta0, n0sq, cand, r_abs, source)
        if w is not None:
            return w
        t *= 0.5
    return None


# ---------------------------------------------------------------------------------------------
# first and second order analysis of one piece


def _first_order_lp(R: np.ndarray, G: np.ndarray) -> tuple[float, np.ndarray]:
    """``max tau`` s.t. ``R d >= tau``, ``G d >= 0``, ``|d|_inf <= 1``, ``tau <= 1``."""
    from scipy.optimize import linprog

    P = R.shape[1]
    if R.shape[0] == 0:
        return 0.0, np.zeros(P)
    A = [np.hstack([-R, np.ones((R.shape[0], 1))])]
    if G.shape[0]:
        A.append(np.hstack([-G, np.zeros((G.shape[0], 1))]))
    A_ub = np.vstack(A)
    c = np.zeros(P + 1)
    c[-1] = -1.0
    bounds = [(-1.0, 1.0)] * P + [(None, 1.0)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(A_ub.shape[0]), bounds=bounds, method="highs")
    if res.status != 0:
        return 0.0, np.zeros(P)
    return float(-res.fun), np.asarray(res.x[:P])


def _null_space(B: np.ndarray, P: int) -> np.ndarray:
    if B.shape[0] == 0:
        return np.eye(P)
    _, s, Vt = np.linalg.svd(B)
    rank = int(np.sum(s > 1e-10 * max(float(s[0]), 1e-300)))
    return Vt[rank:].T


def _cone_min_curvature(H, E, C, tol, max_faces=4096):
    """``min d^T H d`` over unit ``d`` with ``E d = 0``, ``C d >= 0`` (rows normalized).

    The minimizer lies in the relative interior of a face ``{E d = 0, C_S d = 0}``, where it
    is an eigenvector of H restricted to that subspace: every face's eigenvectors (and, for
    repeated eigenvalues, an LP over the eigenspace) are candidates, kept when they satisfy the
    other inequalities. Exact when all ``2**len(C)`` faces are enumerated.
    """
    from scipy.optimize import linprog

    P = H.shape[0]
    m = C.shape[0]
    exact = 2**m <= max_faces
    subsets = itertools.islice(
        itertools.chain.from_iterable(itertools.combinations(range(m), k) for k in range(m + 1)),
        max_faces,
    )
    best = np.inf
    cands: list[tuple[float, np.ndarray]] = []
    for S in subsets:
        rest = np.setdiff1d(np.arange(m), S)
        Q = _null_space(np.vstack([E, C[list(S)]]) if (E.shape[0] or S) else np.zeros((0, P)), P)
        if Q.shape[1] == 0:
            continue
        w, V = np.linalg.eigh(Q.T @ H @ Q)
        i = 0
        while i < w.size and w[i] < best:
            j = i
            while j + 1 < w.size and w[j + 1] - w[i] <= 1e-9 * max(1.0, abs(w[i])):
                j += 1
            basis = Q @ V[:, i : j + 1]
            found = None
            if j == i:
                for sgn in (1.0, -1.0):
                    dd = sgn * basis[:, 0]
                    if rest.size == 0 or np.all(C[rest] @ dd >= -1e-10):
                        found = dd
                        break
            else:  # a repeated eigenvalue: look for a cone direction in the eigenspace
                k = basis.shape[1]
                if rest.size == 0:
                    found = basis[:, 0]
                else:
                    M = C[rest] @ basis
                    res = linprog(
                        np.r_[np.zeros(k), -1.0],
                        A_ub=np.hstack([-M, np.ones((M.shape[0], 1))]),
                        b_ub=np.zeros(M.shape[0]),
                        bounds=[(-1, 1)] * k + [(None, 1.0)],
                        method="highs",
                    )
                    if res.status == 0 and -res.fun >= -1e-12:
                        z = res.x[:k]
                        if np.linalg.norm(z) > 1e-9:
                            found = basis @ z / np.linalg.norm(basis @ z)
            if found is not None:
                best = min(best, float(w[i]))
                if w[i] < -tol:
                    cands.append((float(w[i]), found))
            i = j + 1
    cands.sort(key=lambda c: c[0])
    uniq: list[tuple[float, np.ndarray]] = []
    for c in cands:
        if all(abs(abs(c[1] @ u[1]) - 1.0) > 1e-8 for u in uniq):
            uniq.append(c)
    return best, uniq[:8], exact


def _analyse_piece(prob: Problem, theta: np.ndarray, kinks: list[Kink], values, tol: float):
    """PieceCheck and witness candidates ``(priority, kind, d, e)`` for one piece."""
    P = prob.P
    masks = prob.sign_masks(theta, kinks, values) if prob.relu else None
    sig = np.array([1.0 if v > 0.5 else -1.0 for v in values])
    gam = prob.margins(theta, masks)
    A = np.flatnonzero(gam <= 1.0 + 1e-8)
    JA = prob.jac(theta, masks, A)
    G = prob.preact_jac(theta, kinks, masks) * sig[:, None] if kinks else np.zeros((0, P))
    nt2 = float(theta @ theta)
    L = prob.L
    R = (JA - L * theta[None, :] / nt2) * (np.sqrt(nt2) / L)
    gn = np.linalg.norm(G, axis=1)
    Gn = G[gn > 0] / gn[gn > 0, None]
    tau, d1 = _first_order_lp(R, Gn)
    cands = []
    M = np.vstack([JA, G])
    if tau > tol:
        nd = np.linalg.norm(d1)
        cands.append((-tau, "first-order ascent direction", d1 / nd, np.zeros(P)))
        coef = _nnls(M.T, theta)
        resid = float(np.linalg.norm(theta - M.T @ coef) / np.sqrt(nt2))
        vals = tuple(float(v) for v in values)
        return PieceCheck(vals, float(tau), resid, float("nan"), True), cands
    # multipliers on the piece (margins and sign constraints), Hessian of the Lagrangian
    coef = _nnls(M.T, theta)
    resid = float(np.linalg.norm(theta - M.T @ coef) / np.sqrt(nt2))
    lam, mu = coef[: A.size], coef[A.size :]
    HA = prob.hessians(theta, A, masks)
    HK = (
        prob.preact_hessians(theta, kinks, masks) * sig[:, None, None]
        if kinks
        else np.zeros((0, P, P))
    )
    H = np.eye(P) - np.tensordot(lam, HA, axes=1) - np.tensordot(mu, HK, axes=1)
    ctol = 1e-8 * max(float(coef.max(initial=0.0)), 1e-300)
    rows = np.vstack([JA, G])
    rhess = np.concatenate([HA, HK])
    mult = np.concatenate([lam, mu])
    norms = np.linalg.norm(rows, axis=1)
    ok = norms > 0
    Rn = np.zeros_like(rows)
    Rn[ok] = rows[ok] / norms[ok, None]
    eq = ok & (mult > ctol)
    ineq = ok & ~(mult > ctol)
    curv, neg, exact = _cone_min_curvature(H, Rn[eq], Rn[ineq], tol)
    for c, d in neg:
        # second-order correction: keep the tight constraints at second order (Lagrangian
        # curve), pushing weakly active ones (zero multiplier) into the feasible side
        slack = Rn @ d
        tight = ok & (np.abs(slack) <= 1e-9)
        target = -np.einsum("i,kij,j->k", d, rhess[tight], d)
        target = target + np.where(ineq[tight], 1e-2 * norms[tight], 0.0)
        e = np.linalg.lstsq(rows[tight], target, rcond=None)[0] if tight.any() else np.zeros(P)
        cands.append((c, f"negative curvature {c:.3g} on the critical cone", d, e))
    check = PieceCheck(tuple(float(v) for v in values), float(tau), resid, float(curv), exact)
    return check, cands


# ---------------------------------------------------------------------------------------------
# randomized local search


def _local_search(prob: Problem, theta0: np.ndarray, n0sq: float, r_abs: float, starts: int,
                  rng: np.random.Generator) -> tuple[Witness | None, float]:  # fmt: skip
    """SLSQP on ``min 1/2||theta||^2 s.t. gamma(theta) >= 1, ||theta - theta0|| <= r`` from
    random points of the ball; returns a verified witness (or None) and the best gain."""
    from scipy.optimize import minimize

    best_gain = -np.inf
    P = prob.P

    def cons_margin(th):
        return prob.margins(th) - 1.0

    def cons_margin_jac(th):
        if prob.relu:
            return prob.y[:, None] * prob.model.gradient(th, prob.X)
        return prob.jac(th)

    cons = [
        {"type": "ineq", "fun": cons_margin, "jac": cons_margin_jac},
        {"type": "ineq", "fun": lambda th: r_abs**2 - np.sum((th - theta0) ** 2),
         "jac": lambda th: -2.0 * (th - theta0)},
    ]  # fmt: skip
    for _ in range(starts):
        u = rng.standard_normal(P)
        start = theta0 + 0.5 * r_abs * u / np.linalg.norm(u)
        try:
            res = minimize(
                lambda th: 0.5 * th @ th,
                start,
                jac=lambda th: th,
                constraints=cons,
                method="SLSQP",
                options={"maxiter": 200, "ftol": 1e-16 * n0sq},
            )
        except (ValueError, FloatingPointError):  # pragma: no cover
            continue
        w = _make_witness(prob, theta0, n0sq, res.x, r_abs, "randomized local search (SLSQP)")
        if w is not None:
            return w, w.gain
        gam = prob.margins(res.x)
        if gam.min() > 0:
            c = gam.min() ** (-1.0 / prob.L)
            best_gain = max(best_gain, n0sq - float(c * c * res.x @ res.x))
    return None, best_gain


# ---------------------------------------------------------------------------------------------


def optimality(
    model: Any,
    theta: Any,
    X: Any,
    y: Any = None,
    *,
    radii: Any = (1e-1, 1e-2, 1e-3, 1e-4),
    polish: bool = True,
    tol: float = 1e-7,
    active_tol: float = 0.05,
    kink_tol: float = 1e-7,
    search_starts: int = 6,
    max_pieces: int = 256,
    global_check: bool = True,
    max_combinations: int = 4096,
    seed: int | None = 0,
) -> OptimalityResult:
    """Verdict "global", "local" or "not local" for the KKT point in direction ``theta``.

    Vardi et al. (2022), Problem 2 and Tables 1-2; the evidence is described in the module
    docstring and in :class:`OptimalityResult`.

    Parameters
    ----------
    model : fastbias.models.Model
        Any model of :mod:`fastbias.models` or a :class:`~fastbias.models.Network`.
    theta : array or list of arrays
        A direction with positive margins, e.g. the parameters after a long GD run.
    X, y : data; ``y`` binary labels (None: all +1).
    radii : sequence of float
        Witness radii relative to ``||theta||`` (decreasing); "not local" needs one at each.
    polish : bool
        First move ``theta`` to the exact KKT point on its activation pattern and active set
        (Newton's method on the KKT equations); needed for GD iterates, which only approach
        their limit. The distance moved is reported.
    tol : float
        Relative tolerance for the global certificate (``||theta||^2 <= (1 + tol) * opt``),
        the first-order LP and the curvature sign.
    active_tol : float
        Margins up to ``1 + active_tol`` are candidates for the active set when polishing.
    kink_tol : float
        Relative size below which a hidden neuron's input counts as zero (a kink).
    search_starts : int
        Random starts per radius of the local search (run when no structured witness exists).
    max_pieces : int
        At most this many of the ``2**(number of kinks)`` pieces are examined (all when fewer).
    global_check : bool
        Compute the global optimum where :func:`fastbias.analysis.global_optimum` can.
    max_combinations : int
        Budget of the activation-pattern enumeration for depth-2 ReLU networks.
    seed : int, optional
        Seed of the randomized search and of the piece sample.

    Returns
    -------
    OptimalityResult
    """
    t_start = time.perf_counter()
    prob = Problem(model, X, y)
    th_in = prob.flat(theta)
    if not np.any(th_in):
        raise ValueError("theta is zero; Problem 2 needs a direction with positive margins.")
    radii = np.sort(np.asarray(radii, dtype=np.float64).ravel())[::-1]
    if radii.size == 0 or not np.all(np.isfinite(radii)) or np.any(radii <= 0):
        raise ValueError(f"radii must be positive numbers; got {radii!r}.")
    rng = np.random.default_rng(seed)
    theta0, polished, move, message = kkt_point(
        prob, th_in, polish_it=polish, active_tol=active_tol, kink_tol=kink_tol
    )
    n0 = float(np.linalg.norm(theta0))
    n0sq = n0 * n0
    kk = kkt_at(prob, theta0, 1e-8, kink_tol)
    kinks = prob.kinks(theta0, kink_tol)

    common = dict(
        theta=theta0, norm=n0, kkt=kk, polished=polished, polish_distance=move,
        kinks=tuple(kinks),
    )  # fmt: skip

    # --- global certificate --------------------------------------------------------------
    cert = certificate(prob, max_combinations) if global_check else None
    if cert is not None and n0sq <= cert.value * (1.0 + tol):
        return OptimalityResult(
            "global",
            certificate=cert,
            sosc=False,
            message=message + f"||theta||^2 matches the global optimum ({cert.method})",
            elapsed=time.perf_counter() - t_start,
            **common,
        )

    # --- local analysis: every piece around theta ------------------------------------------
    n_k = len(kinks)
    if n_k == 0:
        vertex_sets = [()]
    elif 2**n_k <= max_pieces:
        vertex_sets = list(itertools.product((0.0, 1.0), repeat=n_k))
    else:
        vertex_sets = [tuple(rng.integers(0, 2, n_k).astype(float)) for _ in range(max_pieces)]
    pieces, cands = [], []
    for values in vertex_sets:
        check, cs = _analyse_piece(prob, theta0, kinks, values, tol)
        pieces.append(check)
        cands += [
            (c[0], c[1] + (f" (piece {check.slopes})" if n_k else ""), c[2], c[3]) for c in cs
        ]
    cands.sort(key=lambda c: c[0])

    witnesses: dict[float, Witness] = {}
    for _, source, d, e in cands:
        for r in radii:
            if r in witnesses:
                continue
            w = _curve_witness(prob, theta0, n0sq, d, e, r * n0, source)
            if w is not None:
                witnesses[r] = w
        if len(witnesses) == radii.size:
            break
    search: dict = {}
    if len(witnesses) < radii.size and search_starts > 0:
        gains = {}
        for r in radii:
            if r in witnesses:
                continue
            w, g = _local_search(prob, theta0, n0sq, r * n0, search_starts, rng)
            gains[float(r)] = g
            if w is not None:
                witnesses[r] = w
            elif len(witnesses) == 0:
                break  # nothing at the largest radius: smaller ones will not do better
        search = {"starts": search_starts, "best_gain": gains}
    sosc = bool(
        all(p.first_order <= tol and p.min_curvature > tol and p.exact for p in pieces)
        and len(vertex_sets) == 2**n_k
    )
    elapsed = time.perf_counter() - t_start
    if len(witnesses) == radii.size:
        ws = tuple(witnesses[r] for r in radii)
        return OptimalityResult(
            "not local",
            witnesses=ws,
            pieces=tuple(pieces),
            sosc=sosc,
            search=search,
            certificate=cert,
            message=message + "feasible points with a smaller norm arbitrarily close to theta",
            elapsed=elapsed,
            **common,
        )
    how = (
        "second-order sufficient condition holds on every piece"
        if sosc
        else "no first- or second-order descent direction and no witness found by local search"
    )
    if cert is not None:
        how += f"; not global: the optimum has ||theta*||^2 = {cert.value:.6g} < {n0sq:.6g}"
    return OptimalityResult(
        "local",
        witnesses=tuple(witnesses[r] for r in radii if r in witnesses),
        pieces=tuple(pieces),
        sosc=sosc,
        search=search,
        certificate=cert,
        message=message + how,
        elapsed=elapsed,
        **common,
    )
