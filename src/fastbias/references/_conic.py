"""Convex weighted group-L1 solves (HiGHS, Clarabel) and the exact KKT polish.

``solve_weighted`` solves the convex problem

    minimize sum_g w_g ||u_g||_2   s.t.  G u >= h,  E u = e

of a :class:`~._problem.GroupProblem` (only the groups in ``keep``; the others are fixed at 0):

* all groups singletons (real coordinates): a linear program, solved as its dual
  ``max h^T alpha + e^T nu  s.t.  |G^T alpha + E^T nu| <= w, alpha >= 0`` by HiGHS's dual
  simplex, adding the columns (samples) whose margin is violated or nearly active until
  none is left (column generation with warm starts; exact, since the last LP certifies every
  constraint);
* otherwise a second-order cone program solved by Clarabel.

``polish`` then refines a solution by Newton's method on the KKT equations restricted to the
identified support (nonzero groups) and active set, which gives the vertex of an LP or the
SOCP solution to machine precision; callers keep the polished point only if its certificate
(:mod:`.stationarity`) is at least as good.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastbias.exceptions import SolverError

from ._problem import GroupProblem

__all__ = ["ConvexResult", "Infeasible", "solve_weighted", "polish"]


class Infeasible(Exception):
    """The constraints of the weighted problem have no solution."""


@dataclass
class ConvexResult:
    u: np.ndarray  # (n,) primal solution (zeros on dropped groups)
    alpha: np.ndarray | None  # (N,) multipliers of G u >= h
    nu: np.ndarray | None  # multipliers of E u = e
    solver: str


# ----------------------------------------------------------------------------------------
# HiGHS
# ----------------------------------------------------------------------------------------


def _highs_core():
    """The pybind11 HiGHS module shipped inside SciPy (>= 1.15), else None."""
    try:
        from scipy.optimize._highspy import _core
    except ImportError:  # pragma: no cover - older SciPy
        return None
    if not hasattr(_core, "_Highs"):  # pragma: no cover
        return None
    return _core


_USE_HIGHS_CORE = True  # tests switch this off to exercise the scipy.optimize.linprog path


def _lp_highs_core(core, G, h, E, e, w, cols_init):
    """Dual LP with column generation over the inequality rows, warm-started HiGHS."""
    inf = core.kHighsInf
    n = w.shape[0]
    H = core._Highs()
    H.setOptionValue("output_flag", False)
    H.setOptionValue("presolve", "off")
    lp = core.HighsLp()
    lp.num_row_ = n
    lp.row_lower_ = -w
    lp.row_upper_ = w
    lp.num_col_ = 0
    lp.col_cost_ = np.zeros(0)
    lp.col_lower_ = np.zeros(0)
    lp.col_upper_ = np.zeros(0)
    lp.a_matrix_.format_ = core.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.zeros(1, dtype=np.int32)
    lp.a_matrix_.index_ = np.zeros(0, dtype=np.int32)
    lp.a_matrix_.value_ = np.zeros(0)
    H.passModel(lp)

    def add(cols_matrix: np.ndarray, cost: np.ndarray, lower: np.ndarray) -> None:
        k = cols_matrix.shape[1]
        if k == 0:
            return
        M = np.ascontiguousarray(cols_matrix.T)  # one column per row of M
        nz = M != 0
        counts = nz.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        idx = np.nonzero(nz)[1].astype(np.int32)
        vals = M[nz]
        H.addCols(k, cost, lower, np.full(k, inf), int(vals.size), starts, idx, vals)

    # columns: nu (free) first, then the working set of alpha (>= 0)
    n_nu = 0 if E is None else E.shape[0]
    if n_nu:
        add(E.T, -e, np.full(n_nu, -inf))
    N = 0 if G is None else G.shape[0]
    in_set = np.zeros(N, dtype=bool)
    order: list[int] = []
    if N:
        in_set[cols_init] = True
        order = list(cols_init)
        add(G[cols_init].T, -h[cols_init], np.zeros(len(cols_init)))
    for _ in range(max(10, N)):
        H.run()
        status = H.getModelStatus()
        if status in (
            core.HighsModelStatus.kUnbounded,
            core.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            raise Infeasible
        if status != core.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS stopped with status {H.modelStatusToString(status)}.")
        sol = H.getSolution()
        u = -np.asarray(sol.row_dual, dtype=np.float64)
        if not N:
            break
        # add every left-out row that is violated or nearly active (slack < 1e-9): rows
        # within the solver's tolerance of active may be active at the exact optimum
        m = G @ u - h
        viol = np.flatnonzero((m < 1e-9 * np.maximum(1.0, np.abs(h))) & ~in_set)
        if viol.size == 0:
            break
        add_idx = viol[np.argsort(m[viol])][: max(n, 16)]
        in_set[add_idx] = True
        order.extend(add_idx.tolist())
        add(G[add_idx].T, -h[add_idx], np.zeros(add_idx.size))
    else:  # pragma: no cover
        raise SolverError("HiGHS column generation did not terminate.")
    col = np.asarray(sol.col_value, dtype=np.float64)
    nu = col[:n_nu] if n_nu else None
    alpha = None
    if N:
        alpha = np.zeros(N)
        alpha[np.asarray(order, dtype=np.int64)] = np.maximum(col[n_nu:], 0.0)
    return u, alpha, nu


def _lp_linprog(G, h, E, e, w):
    """The primal LP with split variables through scipy.optimize.linprog (HiGHS)."""
    from scipy.optimize import linprog

    n = w.shape[0]
    c = np.concatenate([w, w])
    A_ub = b_ub = A_eq = b_eq = None
    if G is not None:
        A_ub = np.hstack([-G, G])
        b_ub = -h
    if E is not None:
        A_eq = np.hstack([E, -E])
        b_eq = e
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status == 2:
        raise Infeasible
    if res.status != 0 or res.x is None:
        raise SolverError(f"HiGHS (linprog) failed: {res.message}")
    u = res.x[:n] - res.x[n:]
    alpha = None if G is None else np.maximum(-np.asarray(res.ineqlin.marginals), 0.0)
    nu = None if E is None else np.asarray(res.eqlin.marginals, dtype=np.float64)
    return u, alpha, nu


def _initial_columns(G: np.ndarray, h: np.ndarray, n: int) -> np.ndarray:
    """A working set for column generation: the rows with smallest normalized margin."""
    N = G.shape[0]
    k = min(N, 3 * n)
    if k == N:
        return np.arange(N)
    u0 = G.T @ (1.0 / np.maximum(np.abs(G).max(axis=1), 1e-300))
    m = (G @ u0) / (np.abs(G).max(axis=1) * np.maximum(np.abs(h), 1e-300))
    return np.sort(np.argpartition(m, k - 1)[:k])


def _solve_lp(G, h, E, e, w) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, str]:
    core = _highs_core() if _USE_HIGHS_CORE else None
    if core is not None:
        cols = _initial_columns(G, h, w.shape[0]) if G is not None else np.zeros(0, np.int64)
        u, alpha, nu = _lp_highs_core(core, G, h, E, e, w, cols)
        return u, alpha, nu, "highs"
    u, alpha, nu = _lp_linprog(G, h, E, e, w)
    return u, alpha, nu, "highs-linprog"


# ----------------------------------------------------------------------------------------
# Clarabel
# ----------------------------------------------------------------------------------------


def _solve_socp(G, h, E, e, gid, ng, w):
    import clarabel
    from scipy import sparse

    n = gid.shape[0]
    size = np.bincount(gid, minlength=ng)
    nvar = n + ng
    blocks = []
    rhs = []
    cones = []
    n_e = 0 if E is None else E.shape[0]
    if n_e:
        blocks.append(sparse.hstack([sparse.csr_matrix(E), sparse.csr_matrix((n_e, ng))]))
        rhs.append(e)
        cones.append(clarabel.ZeroConeT(n_e))
    N = 0 if G is None else G.shape[0]
    single = np.flatnonzero(size == 1)
    coord_of = np.empty(ng, dtype=np.int64)  # first coordinate of each group
    coord_of[gid[::-1]] = np.arange(n)[::-1]
    n_nonneg = N + 2 * single.size
    if n_nonneg:
        parts = []
        if N:
            parts.append(sparse.hstack([sparse.csr_matrix(-G), sparse.csr_matrix((N, ng))]))
            rhs.append(-h)
        if single.size:
            k = single.size
            r = np.arange(k)
            j = coord_of[single]
            # t_g - u_j >= 0  and  t_g + u_j >= 0   (s = b - A x)
            A1 = sparse.csr_matrix(
                (np.r_[np.ones(k), -np.ones(k)], (np.r_[r, r], np.r_[j, n + single])), (k, nvar)
            )
            A2 = sparse.csr_matrix(
                (np.r_[-np.ones(k), -np.ones(k)], (np.r_[r, r], np.r_[j, n + single])), (k, nvar)
            )
            parts += [A1, A2]
            rhs += [np.zeros(k), np.zeros(k)]
        blocks += parts
        cones.append(clarabel.NonnegativeConeT(n_nonneg))
    pairs = np.flatnonzero(size == 2)
    if pairs.size:
        k = pairs.size
        first = coord_of[pairs]
        rows = np.arange(3 * k)
        cols = np.empty(3 * k, dtype=np.int64)
        cols[0::3] = n + pairs
        cols[1::3] = first
        cols[2::3] = first + 1
        blocks.append(sparse.csr_matrix((-np.ones(3 * k), (rows, cols)), (3 * k, nvar)))
        rhs.append(np.zeros(3 * k))
        cones += [clarabel.SecondOrderConeT(3)] * k
    if np.any(size > 2):  # pragma: no cover - not produced by the builders
        raise SolverError("groups of more than two coordinates are not supported.")
    A = sparse.vstack(blocks).tocsc()
    b = np.concatenate(rhs)
    q = np.concatenate([np.zeros(n), w])
    P = sparse.csc_matrix((nvar, nvar))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = 1e-10
    settings.tol_gap_rel = 1e-10
    settings.tol_feas = 1e-10
    settings.tol_ktratio = 1e-8
    settings.max_iter = 200
    sol = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
    status = str(sol.status)
    if status in ("PrimalInfeasible", "AlmostPrimalInfeasible"):
        raise Infeasible
    if status not in ("Solved", "AlmostSolved", "InsufficientProgress", "MaxIterations"):
        raise SolverError(f"Clarabel stopped with status {status}.")
    x = np.asarray(sol.x)
    z = np.asarray(sol.z)
    if not np.all(np.isfinite(x)):
        raise SolverError(f"Clarabel returned a non-finite solution (status {status}).")
    u = x[:n]
    nu = -z[:n_e] if n_e else None
    alpha = np.maximum(z[n_e : n_e + N], 0.0) if N else None
    return u, alpha, nu, "clarabel"


# ----------------------------------------------------------------------------------------
# public (private to the package) entry points
# ----------------------------------------------------------------------------------------


def solve_weighted(
    prob: GroupProblem, w: np.ndarray, keep: np.ndarray | None = None
) -> ConvexResult:
    """``min sum_g w_g ||u_g|| s.t. G u >= h, E u = e`` over the groups in ``keep``.

    Raises :class:`Infeasible` if the constraints have no solution.
    """
    ng = prob.ng
    keep = np.ones(ng, dtype=bool) if keep is None else keep
    cols = np.flatnonzero(keep[prob.gid])
    G = None if prob.G is None else prob.G[:, cols]
    E = None if prob.E is None else prob.E[:, cols]
    if prob.singletons:
        wk = w[prob.gid[cols]]
        u_k, alpha, nu, solver = _solve_lp(G, prob.h, E, prob.e, wk)
    else:
        kept_groups = np.flatnonzero(keep)
        remap = np.full(ng, -1, dtype=np.int64)
        remap[kept_groups] = np.arange(kept_groups.size)
        gid_k = remap[prob.gid[cols]]
        u_k, alpha, nu, solver = _solve_socp(
            G, prob.h, E, prob.e, gid_k, kept_groups.size, w[kept_groups]
        )
    u = np.zeros(prob.n)
    u[cols] = u_k
    return ConvexResult(u=u, alpha=alpha, nu=nu, solver=solver)


def _grad_hess(prob: GroupProblem, u: np.ndarray, cols: np.ndarray, p: float):
    """Gradient and Hessian of Phi on the coordinates ``cols`` (whole groups, all nonzero).

    ``Phi = sum_g mu_g r_g^p`` with ``r_g = ||u_g||``: gradient ``mu p r^{p-2} u_g``, Hessian
    block ``mu p r^{p-2} (I + (p - 2) u_g u_g^T / r^2)`` (block diagonal, blocks of size 1-2).
    """
    g_of = prob.gid[cols]
    r = prob.group_norms(u)[g_of]
    uc = u[cols]
    coef = prob.mu[g_of] * p * r ** (p - 2.0)
    grad = coef * uc
    same = g_of[:, None] == g_of[None, :]
    Hm = np.where(same, ((p - 2.0) * coef / r**2)[:, None] * np.outer(uc, uc), 0.0)
    Hm[np.diag_indices_from(Hm)] += coef
    return grad, Hm


def polish(
    prob: GroupProblem,
    u: np.ndarray,
    active: np.ndarray,
    support: np.ndarray,
    max_iter: int = 40,
) -> np.ndarray | None:
    """Newton's method on the KKT equations restricted to a support and an active set.

    Unknowns ``u_S`` (coordinates of the support groups), ``alpha_A``, ``nu``; equations
    ``grad Phi(u_S) = G_AS^T alpha_A + E_S^T nu``, ``G_AS u_S = h_A``, ``E_S u_S = e``
    (for an LP vertex one step solves the square system exactly). Returns the refined ``u``
    (zeros off the support), or None if Newton fails or a support group collapses to zero.
    """
    p = prob.p
    cols = np.flatnonzero(np.isin(prob.gid, support))
    if cols.size == 0:
        return None
    k = cols.size
    rows = []
    rhs = []
    if prob.G is not None and active.size:
        rows.append(prob.G[np.ix_(active, cols)])
        rhs.append(prob.h[active])
    if prob.E is not None:
        rows.append(prob.E[:, cols])
        rhs.append(prob.e)
    C = np.vstack(rows) if rows else np.zeros((0, k))
    b = np.concatenate(rhs) if rhs else np.zeros(0)
    nc = C.shape[0]
    full = np.zeros_like(u)
    x = u[cols].copy()
    xscale = max(float(np.abs(x).max()), 1e-300)

    def resid(x: np.ndarray, lam: np.ndarray):
        full[cols] = x
        grad, Hm = _grad_hess(prob, full, cols, p)
        return np.concatenate([grad - C.T @ lam, C @ x - b]), Hm, grad

    full[cols] = x
    grad0, _ = _grad_hess(prob, full, cols, p)
    lam = np.linalg.lstsq(C.T, grad0, rcond=None)[0] if nc else np.zeros(0)
    r, Hm, grad = resid(x, lam)
    gscale = max(float(np.abs(grad).max()), float(np.abs(b).max(initial=0.0)), 1e-300)
    best = float(np.abs(r).max())
    for _ in range(max_iter):
        if best <= 1e-15 * gscale:
            break
        K = np.block([[Hm, -C.T], [C, np.zeros((nc, nc))]])
        try:
            step = np.linalg.solve(K, -r)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(K, -r, rcond=None)[0]
        if not np.all(np.isfinite(step)):
            break
        t = 1.0
        accepted = None
        for _ in range(12):
            xn = x + t * step[:k]
            full[cols] = xn
            if np.min(prob.group_norms(full)[support]) > 1e-12 * xscale:
                rn, Hn, gn = resid(xn, lam + t * step[k:])
                if float(np.abs(rn).max()) < best:
                    accepted = (xn, lam + t * step[k:], rn, Hn, gn)
                    break
            t *= 0.5
        if accepted is None:
            break
        x, lam, r, Hm, grad = accepted
        new = float(np.abs(r).max())
        stalled = new > 0.5 * best
        best = new
        if stalled and t < 1.0:
            break
    out = np.zeros_like(u)
    out[cols] = x
    if not np.all(np.isfinite(out)):
        return None
    if np.min(prob.group_norms(out)[support]) <= 1e-12 * xscale:
        return None
    return out
