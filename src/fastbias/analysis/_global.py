"""Global optima of Problem 2 (Vardi eq. 2) where the paper's arguments give them exactly.

* depth 1 (``Phi`` linear in ``theta``): Problem 2 is the L2 hard-margin SVM on the features
  ``grad Phi(theta; x_i)``;
* fully connected linear networks of any depth (Vardi Theorem 3.1, Gunasekar eq. 15):
  ``min ||theta||^2 = L ||w_hat||^{2/L}`` with ``w_hat`` the L2 max-margin predictor, attained
  by balanced rank-one layers ``W^(l) = C v_l v_{l-1}^T``;
* depth-2 linear networks without sharing (Vardi Theorem 4.2, proof idea): with
  ``u_j = v_j w_j``, ``||w_j||^2 + v_j^2 >= 2 ||u_j||`` with equality when balanced, so Problem 2
  is the convex program ``min 2 sum_j ||u_j|| s.t. y_i sum_j u_j . x_i[S_j] >= 1`` (an SOCP);
* depth-2 ReLU networks without sharing, small ones: for a fixed activation pattern and sign of
  ``v_j`` per neuron the same reformulation is an SOCP with the pattern as linear constraints;
  the global optimum is the best over all realizable patterns (enumerated).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import NotSeparableError, SolverError
from ..models import Diagonal, FullyConnected, Linear
from ..models.network import Network
from ._problem import Problem

__all__ = ["GlobalCertificate", "global_optimum"]

_MAX_COMBINATIONS = 4096


@dataclass(frozen=True, eq=False)
class GlobalCertificate:
    """The global optimum of Problem 2 and how it was obtained.

    ``value`` is ``min ||theta||^2``; ``theta`` a global optimizer (flat, feasible: every
    margin >= 1 up to solver accuracy); ``method`` names the paper's argument.
    """

    method: str
    value: float
    theta: np.ndarray = field(repr=False)
    detail: str = ""


def _settings(clarabel):
    s = clarabel.DefaultSettings()
    s.verbose = False
    s.tol_gap_abs = 1e-12
    s.tol_gap_rel = 1e-12
    s.tol_feas = 1e-12
    s.tol_ktratio = 1e-10
    return s


def group_socp(F: np.ndarray, y: np.ndarray, groups: list[np.ndarray], extra=None):
    """``min sum_j ||u_{G_j}|| s.t. y_i F_i . u >= 1`` (and ``extra = (A, b)``: ``A u >= b``).

    Returns ``(value, u)`` or ``(inf, None)`` when infeasible. Solved with Clarabel."""
    import clarabel
    import scipy.sparse as sp

    n_u = F.shape[1]
    k = len(groups)
    rows = [np.hstack([-(y[:, None] * F), np.zeros((F.shape[0], k))])]
    b = [-np.ones(F.shape[0])]
    if extra is not None and extra[0].shape[0]:
        rows.append(np.hstack([-extra[0], np.zeros((extra[0].shape[0], k))]))
        b.append(-extra[1])
    n_lin = sum(r.shape[0] for r in rows)
    cones = [clarabel.NonnegativeConeT(n_lin)]
    for j, g in enumerate(groups):
        blk = np.zeros((1 + g.size, n_u + k))
        blk[0, n_u + j] = -1.0
        blk[np.arange(1, 1 + g.size), g] = -1.0
        rows.append(blk)
        b.append(np.zeros(1 + g.size))
        cones.append(clarabel.SecondOrderConeT(1 + g.size))
    A = sp.csc_matrix(np.vstack(rows))
    q = np.concatenate([np.zeros(n_u), np.ones(k)])
    P = sp.csc_matrix((n_u + k, n_u + k))
    sol = clarabel.DefaultSolver(P, q, A, np.concatenate(b), cones, _settings(clarabel)).solve()
    status = str(sol.status)
    if "Infeasible" in status:
        return np.inf, None
    if status not in ("Solved", "AlmostSolved"):
        raise SolverError(f"Clarabel did not solve the convex reformulation: status {status}.")
    u = np.asarray(sol.x)[:n_u].copy()
    # interior-point zeros are ~1e-13, which u_j -> w_j = u_j / sqrt(||u_j||) would blow up to
    # ~1e-7: clear groups that are zero to solver accuracy
    norms = np.array([np.linalg.norm(u[g]) for g in groups])
    for g, nrm in zip(groups, norms, strict=True):
        if nrm <= 1e-9 * norms.max():
            u[g] = 0.0
    return float(sum(np.linalg.norm(u[g]) for g in groups)), u


def _svm(F: np.ndarray, y: np.ndarray):
    from ..references import max_margin

    return max_margin(F, y)


def _depth_one(prob: Problem) -> GlobalCertificate:
    F = prob.jac(np.zeros(prob.P)) * prob.y[:, None]  # grad Phi is constant
    sol = _svm(F, prob.y)
    return GlobalCertificate(
        "depth 1: Phi is linear in theta, Problem 2 is the L2 hard-margin SVM on grad Phi",
        float(sol.coef @ sol.coef),
        sol.coef.copy(),
    )


def _fully_connected(prob: Problem) -> GlobalCertificate:
    sol = _svm(prob.X, prob.y)
    w = sol.coef
    L = prob.L
    nw = float(np.linalg.norm(w))
    C = nw ** (1.0 / L)
    mdl = prob.model
    if isinstance(mdl, FullyConnected):
        dims = [prob.d, *mdl.widths]
        layers = [np.outer(w / nw, np.eye(dims[1])[0]) * C]
        for a, b in zip(dims[1:-1], dims[2:], strict=True):
            layers.append(np.outer(np.eye(a)[0], np.eye(b)[0]) * C)
        layers.append(np.eye(dims[-1])[0] * C)
        theta = mdl.flatten(layers)
    else:
        Ws, prev = [], w / nw
        for layer in range(L):
            rows = mdl.dims[layer + 1]
            Ws.append(C * np.outer(np.eye(rows)[0], prev))
            prev = np.eye(rows)[0]
        theta = mdl.flatten(mdl.params_from_weights(Ws))
    return GlobalCertificate(
        "fully connected linear network (Vardi Theorem 3.1): min ||theta||^2 = "
        "L ||w_hat||^(2/L), w_hat the L2 max-margin predictor",
        float(L * nw ** (2.0 / L)),
        theta,
        f"||w_hat|| = {nw:.12g}",
    )


def _two_layer_structure(net: Network):
    """Per hidden neuron j with an output weight: (input columns S_j, their parameter
    positions in theta, the output parameter's position)."""
    g1, g2 = net.patterns
    out = []
    for j in range(g1.shape[0]):
        if g2[0, j] < 0:
            continue
        cols = np.flatnonzero(g1[j] >= 0)
        if cols.size == 0:
            continue
        out.append((cols, g1[j, cols] + net.offsets[0], int(g2[0, j]) + net.offsets[1]))
    return out


def _diagonal2(prob: Problem) -> GlobalCertificate:
    groups = [np.array([j]) for j in range(prob.d)]
    value, u = group_socp(prob.X, prob.y, groups)
    a = np.sqrt(np.abs(u))
    theta = np.concatenate([np.sign(u) * a, a])
    return GlobalCertificate(
        "depth-2 diagonal linear network (Vardi Theorem 4.2 with u_j = w1_j w2_j; Gunasekar "
        "Section 5): min ||theta||^2 = 2 min ||beta||_1",
        2.0 * value,
        theta,
    )


def _linear_two_layer(prob: Problem) -> GlobalCertificate:
    net = prob.model
    neurons = _two_layer_structure(net)
    F = np.hstack([prob.X[:, cols] for cols, _, _ in neurons])
    sizes = np.cumsum([0] + [cols.size for cols, _, _ in neurons])
    groups = [np.arange(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    value, u = group_socp(F, prob.y, groups)
    if u is None:
        raise NotSeparableError("no parameters of this network satisfy the margin constraints.")
    theta = np.zeros(prob.P)
    for (_, pos_in, pos_out), g in zip(neurons, groups, strict=True):
        nu = float(np.linalg.norm(u[g]))
        if nu > 0:
            theta[pos_in] = u[g] / np.sqrt(nu)
            theta[pos_out] = np.sqrt(nu)
    return GlobalCertificate(
        "depth-2 linear network without sharing (Vardi Theorem 4.2): convex reformulation "
        "min 2 sum_j ||u_j||, u_j = v_j w_j (SOCP)",
        2.0 * value,
        theta,
    )


def _realizable(Xs: np.ndarray, pattern: np.ndarray) -> bool:
    """Whether some w has ``w.x_i > 0`` on the pattern and ``<= 0`` off it (LP)."""
    from scipy.optimize import linprog

    on, off = Xs[pattern], Xs[~pattern]
    A = np.vstack([-on, off]) if off.size else -on
    b = np.concatenate([-np.ones(len(on)), np.zeros(len(off))])
    res = linprog(np.zeros(Xs.shape[1]), A_ub=A, b_ub=b, bounds=(None, None), method="highs")
    return res.status == 0


def _relu_two_layer(prob: Problem, max_combinations: int) -> GlobalCertificate | None:
    net = prob.model
    neurons = _two_layer_structure(net)
    N = prob.N
    options_by_support: dict[tuple, list] = {}
    for cols, _, _ in neurons:
        key = tuple(cols.tolist())
        if key in options_by_support:
            continue
        Xs = prob.X[:, cols]
        opts: list = [None]  # None: the neuron is off (zero)
        for bits in itertools.product((False, True), repeat=N):
            pattern = np.array(bits)
            if not pattern.any() or not _realizable(Xs, pattern):
                continue
            for sign in (1.0, -1.0):
                if np.any(prob.y[pattern] == sign):  # it must help some sample
                    opts.append((pattern, sign))
        options_by_support[key] = opts
    # neurons with the same support are interchangeable: multisets within each group
    groups: dict[tuple, list[int]] = {}
    for idx, (cols, _, _) in enumerate(neurons):
        groups.setdefault(tuple(cols.tolist()), []).append(idx)
    per_group = []
    total = 1
    for key, members in groups.items():
        combos = list(
            itertools.combinations_with_replacement(
                range(len(options_by_support[key])), len(members)
            )
        )
        per_group.append((key, members, combos))
        total *= len(combos)
        if total > max_combinations:
            return None
    best_val, best_theta = np.inf, None
    for choice in itertools.product(*[c for _, _, c in per_group]):
        assign: dict[int, Any] = {}
        for (key, members, _), combo in zip(per_group, choice, strict=True):
            for idx, opt in zip(members, combo, strict=True):
                assign[idx] = options_by_support[key][opt]
        on = [idx for idx in range(len(neurons)) if assign[idx] is not None]
        if not on:
            continue
        blocks, extra_rows, sizes = [], [], [0]
        for idx in on:
            cols = neurons[idx][0]
            pattern, sign = assign[idx]
            blocks.append(sign * prob.X[:, cols] * pattern[:, None])
            sizes.append(sizes[-1] + cols.size)
        F = np.hstack(blocks)
        n_u = sizes[-1]
        for pos, idx in enumerate(on):
            cols = neurons[idx][0]
            pattern, _ = assign[idx]
            for i in range(N):
                row = np.zeros(n_u)
                row[sizes[pos] : sizes[pos + 1]] = prob.X[i, cols] * (1.0 if pattern[i] else -1.0)
                extra_rows.append(row)
        extra = (np.array(extra_rows), np.zeros(len(extra_rows)))
        grp = [np.arange(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        val, u = group_socp(F, prob.y, grp, extra)
        if u is None or not 2 * val < best_val:
            continue
        theta = np.zeros(prob.P)
        for pos, idx in enumerate(on):
            _, pos_in, pos_out = neurons[idx]
            ug = u[grp[pos]]
            nu = float(np.linalg.norm(ug))
            if nu > 0:
                theta[pos_in] = ug / np.sqrt(nu)
                theta[pos_out] = assign[idx][1] * np.sqrt(nu)
        best_val, best_theta = 2 * val, theta
    if best_theta is None:
        raise NotSeparableError(
            "no parameters of this ReLU network satisfy the margin constraints."
        )
    return GlobalCertificate(
        "depth-2 ReLU network without sharing: enumeration of activation patterns and output "
        "signs, each an SOCP in u_j = |v_j| w_j (the reformulation of Vardi Theorem 4.2 per "
        "pattern)",
        float(best_val),
        best_theta,
        f"{total} pattern combinations",
    )


def certificate(
    prob: Problem, max_combinations: int = _MAX_COMBINATIONS
) -> GlobalCertificate | None:
    """The global optimum of Problem 2 when one of the module's arguments applies, else None."""
    mdl = prob.model
    linear = not isinstance(mdl, Network) or mdl.linear_predictor
    if prob.L == 1 and linear:
        return _depth_one(prob)
    if isinstance(mdl, (Linear, FullyConnected)):
        return _fully_connected(prob)
    if isinstance(mdl, Network) and linear and mdl.is_fully_connected:
        return _fully_connected(prob)
    if isinstance(mdl, Diagonal) and mdl.depth == 2:
        return _diagonal2(prob)
    if isinstance(mdl, Network) and mdl.depth == 2 and mdl.no_share:
        if linear:
            return _linear_two_layer(prob)
        return _relu_two_layer(prob, max_combinations)
    return None


def global_optimum(
    model: Any, X: Any, y: Any = None, *, max_combinations: int = _MAX_COMBINATIONS
) -> GlobalCertificate | None:
    """The global optimum of Problem 2 (Vardi eq. 2) where it is computable exactly.

    Depth-1 models (an SVM), fully connected linear networks of any depth (Theorem 3.1),
    depth-2 diagonal and other depth-2 linear networks without sharing (the convex
    reformulation of Theorem 4.2), and depth-2 ReLU networks without sharing whose
    activation patterns can be enumerated (at most ``max_combinations`` SOCPs). Returns None
    for other architectures (deeper diagonal, convolutional, shared weights, large ReLU).
    """
    prob = Problem(model, X, y)
    return certificate(prob, max_combinations)
