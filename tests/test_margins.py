"""Max-margin solvers in every norm (fastbias.references.max_margin).

Expected values come from: the worked example of Yun et al. (2021) Section 6 (solved by hand
below), cvxpy (Clarabel) on the same problem, brute-force vertex enumeration for the concave
l_p objective, and the L2 solver of Soudry eq. (2.4) for the multi-class reduction.
"""

from __future__ import annotations

import importlib
import itertools
import warnings

import numpy as np
import pytest

import fastbias as fb
from fastbias.exceptions import NotSeparableError
from fastbias.references import (
    MarginSolution,
    MaxMarginSolution,
    MulticlassMarginSolution,
    _dft,
    max_margin,
    stationarity,
)
from fastbias.references.l2_margin import max_margin as l2_max_margin

cp = pytest.importorskip("cvxpy")
conic = importlib.import_module("fastbias.references._conic")

# cvxpy/Clarabel solved to 1e-12 gaps: objectives agree to ~1e-10; coefficients of a
# (nearly) flat optimum only to ~1e-6, so coefficient checks use COEF_RTOL.
OBJ_RTOL = 1e-8
COEF_RTOL = 2e-6
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}

YUN_X = np.array([[1.0, 2.0], [0.0, -3.0]])
YUN_Y = np.array([1, -1])


def data(n, d, seed, margin=0.1):
    return fb.datasets.separable_gaussian(n, d, margin=margin, seed=seed)


def cvx_solve(objective, constraints):
    prob = cp.Problem(cp.Minimize(objective), constraints)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL", **TIGHT)
    return prob.value


def cvx_margin(Z, norm, S=None):
    N, d = Z.shape
    b = cp.Variable(d)
    if norm == "l1":
        obj = cp.norm1(b)
    elif norm == "dft-l1":
        obj = cp.sum(cp.abs(_dft.dft_matrix(d) @ b))
    else:  # transformed, square invertible S: ||S^{-T} z||_1
        obj = cp.sum(cp.abs(np.linalg.inv(S.T) @ b))
    value = cvx_solve(obj, [Z @ b >= 1])
    return value, b.value


def brute_force_lp(Z, p):
    """Global min of sum |b|^p s.t. Z b >= 1: the best vertex of {Z b >= 1} within an orthant.

    The objective is concave on every orthant, so its minimum over the polyhedron (pointed
    inside an orthant) is attained at a point with d independent active constraints among
    ``z_n^T b = 1`` and ``b_j = 0``.
    """
    N, d = Z.shape
    rows = np.vstack([Z, np.eye(d)])
    rhs = np.r_[np.ones(N), np.zeros(d)]
    best, arg = np.inf, None
    for idx in itertools.combinations(range(N + d), d):
        A = rows[list(idx)]
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        b = np.linalg.solve(A, rhs[list(idx)])
        if (Z @ b).min() < 1 - 1e-9:
            continue
        val = np.sum(np.abs(b) ** p)
        if val < best:
            best, arg = val, b
    return best ** (1 / p), arg


# ----------------------------------------------------------------------------------------
# Yun et al. (2021) Section 6, classification with (1, 2) -> +1, (0, -3) -> -1
# ----------------------------------------------------------------------------------------


def test_yun_two_point_classification():
    # By hand: the constraints are b1 + 2 b2 >= 1, 3 b2 >= 1. L2: (0.2, 0.4) (the second is
    # slack). L1: (0, 0.5). DFT (d = 2, unitary): |F b|_1 = sqrt(2) max(|b1|, |b2|), minimized
    # at b1 = b2 = 1/3 (both constraints active).
    l2 = max_margin(YUN_X, YUN_Y)
    np.testing.assert_allclose(l2.coef, [0.2, 0.4], atol=1e-12)
    l1 = max_margin(YUN_X, YUN_Y, norm="l1")
    np.testing.assert_allclose(l1.coef, [0.0, 0.5], atol=1e-12)
    assert l1.objective == pytest.approx(0.5, rel=1e-12)
    dft = max_margin(YUN_X, YUN_Y, norm="dft-l1")
    np.testing.assert_allclose(dft.coef, [1 / 3, 1 / 3], atol=1e-10)
    assert dft.objective == pytest.approx(np.sqrt(2) / 3, rel=1e-10)
    np.testing.assert_array_equal(dft.support, [0, 1])
    # p = 2/3 (depth-3 diagonal network): brute force says (0, 0.5) again.
    lp = max_margin(YUN_X, YUN_Y, norm="lp", p=2 / 3)
    obj, arg = brute_force_lp(YUN_Y[:, None] * YUN_X, 2 / 3)
    np.testing.assert_allclose(lp.coef, arg, atol=1e-12)
    assert lp.objective == pytest.approx(obj, rel=1e-12)


# ----------------------------------------------------------------------------------------
# dispatcher and result type
# ----------------------------------------------------------------------------------------


def test_l2_default_is_the_existing_solver():
    X, y = data(40, 5, seed=0)
    a = max_margin(X, y)
    b = l2_max_margin(X, y)
    assert type(a) is MaxMarginSolution
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.dual, b.dual)
    assert fb.max_margin is max_margin
    np.testing.assert_array_equal(fb.max_margin(X, y, norm="l2").coef, b.coef)


@pytest.mark.parametrize("norm", ["l1", "dft-l1"])
def test_solution_fields(norm):
    X, y = data(25, 7, seed=1)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm=norm)
    assert isinstance(sol, MarginSolution) and isinstance(sol, MaxMarginSolution)
    assert sol.status == "optimal" and sol.norm == norm and sol.p == 1.0
    assert sol.kkt_residual < 1e-9
    m = Z @ sol.coef
    assert m.min() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(sol.support, np.flatnonzero(np.abs(m - 1) <= 1e-9))
    rho = sol.coef if norm == "l1" else np.fft.fft(sol.coef, norm="ortho")
    np.testing.assert_allclose(sol.rho, rho, atol=1e-12)
    assert sol.objective == pytest.approx(np.abs(rho).sum(), rel=1e-12)
    assert sol.margin == pytest.approx(1 / sol.objective, rel=1e-15)
    np.testing.assert_allclose(sol.direction, sol.coef / np.linalg.norm(sol.coef), rtol=1e-15)
    # LP/SOCP duality: sum(alpha) = ||rho||_1 at the optimum, alpha >= 0 only on the support.
    assert sol.dual.min() >= 0
    assert sol.dual.sum() == pytest.approx(sol.objective, rel=1e-9)
    assert np.all(sol.dual[np.setdiff1d(np.arange(len(y)), sol.support)] == 0)
    with pytest.raises(ValueError, match="L2"):
        sol.w_tilde(0.1)
    with pytest.raises(ValueError):
        sol.coef[0] = 1.0


# ----------------------------------------------------------------------------------------
# convex norms against cvxpy
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, d, seed", [(30, 5, 0), (12, 20, 1), (60, 8, 2), (40, 7, 3), (9, 2, 4), (400, 10, 5)]
)
def test_l1_matches_cvxpy(n, d, seed):
    X, y = data(n, d, seed)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="l1")
    value, b = cvx_margin(Z, "l1")
    assert sol.objective == pytest.approx(value, rel=OBJ_RTOL)
    np.testing.assert_allclose(sol.coef, b, atol=COEF_RTOL * np.abs(b).max())
    assert sol.solver == "highs"


def test_l1_linprog_fallback_matches(monkeypatch):
    X, y = data(300, 12, seed=6)  # N > 3d: the fast path uses column generation
    fast = max_margin(X, y, norm="l1")
    monkeypatch.setattr(conic, "_USE_HIGHS_CORE", False)
    slow = max_margin(X, y, norm="l1")
    assert slow.solver == "highs-linprog"
    np.testing.assert_allclose(fast.coef, slow.coef, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(fast.support, slow.support)


@pytest.mark.parametrize(
    "n, d, seed", [(30, 5, 0), (30, 6, 1), (12, 9, 2), (12, 10, 3), (40, 1, 4)]
)
def test_dft_l1_matches_cvxpy_odd_and_even_d(n, d, seed):
    X, y = data(n, d, seed)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="dft-l1")
    value, b = cvx_margin(Z, "dft-l1")
    assert sol.objective == pytest.approx(value, rel=OBJ_RTOL)
    np.testing.assert_allclose(sol.coef, b, atol=COEF_RTOL * np.abs(b).max())
    # the reported objective is the full-spectrum unitary-DFT l1 norm
    assert sol.objective == pytest.approx(np.abs(np.fft.fft(sol.coef)).sum() / np.sqrt(d))


def test_dft_l1_d2_is_l1_in_the_hadamard_basis():
    # For d = 2 the unitary DFT is real, F = [[1, 1], [1, -1]] / sqrt(2): the DFT problem is the
    # L1 problem on data z F (F symmetric orthogonal), beta = F c.
    X, y = data(20, 2, seed=7)
    F = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2)
    dft = max_margin(X, y, norm="dft-l1")
    l1 = max_margin(X @ F, y, norm="l1")
    np.testing.assert_allclose(dft.coef, F @ l1.coef, atol=1e-12)


# ----------------------------------------------------------------------------------------
# non-convex l_p: brute force, p -> 1, certificates
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.5, 2 / 3, 0.8])
@pytest.mark.parametrize("n, d, seed", [(6, 2, 0), (7, 3, 1), (8, 3, 2)])
def test_lp_best_matches_brute_force(n, d, seed, p):
    X, y = data(n, d, seed, margin=0.3)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="lp", p=p, starts=6, seed=0)
    obj, arg = brute_force_lp(Z, p)
    assert sol.status == "stationary"
    assert sol.objective == pytest.approx(obj, rel=1e-10)
    np.testing.assert_allclose(sol.coef, arg, atol=1e-10)
    # every reported point is distinct, feasible, certified, and sorted by objective
    objs = [pt.objective for pt in sol.stationary_points]
    assert objs == sorted(objs) and objs[0] == pytest.approx(sol.objective, rel=1e-14)
    for pt in sol.stationary_points:
        assert (Z @ pt.coef).min() == pytest.approx(1.0, abs=1e-12)
        assert pt.certificate.residual < 1e-8
        assert np.sum(np.abs(pt.coef) ** p) ** (1 / p) == pytest.approx(pt.objective, rel=1e-12)
        indep = stationarity(pt.coef, X, y, norm="lp", p=p, zero_tol=1e-9)
        assert indep.residual < 1e-8


def test_lp_p_to_1_agrees_with_l1():
    X, y = data(30, 6, seed=3)
    l1 = max_margin(X, y, norm="l1")
    near = max_margin(X, y, norm="lp", p=0.999, starts=2)
    # start 0 begins at the L1 vertex; for p -> 1 it stays there (the vertex is stationary and
    # the best point found), and the same holds in the DFT domain
    np.testing.assert_allclose(near.coef, l1.coef, atol=1e-10)
    assert near.objective == pytest.approx(np.sum(np.abs(l1.coef) ** 0.999) ** (1 / 0.999))
    one = max_margin(X, y, norm="lp", p=1.0)
    np.testing.assert_allclose(one.coef, l1.coef, atol=1e-13)
    assert one.status == "optimal"
    dft1 = max_margin(X, y, norm="dft-l1")
    dftnear = max_margin(X, y, norm="dft-lp", p=0.999, starts=1)
    np.testing.assert_allclose(dftnear.coef, dft1.coef, atol=1e-7)


def test_dft_lp_d2_matches_brute_force_in_hadamard_basis():
    X, y = data(7, 2, seed=8, margin=0.3)
    F = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="dft-lp", p=0.5)
    obj, arg = brute_force_lp(Z @ F, 0.5)
    assert sol.objective == pytest.approx(obj, rel=1e-9)
    np.testing.assert_allclose(sol.coef, F @ arg, atol=1e-9)


def test_dft_lp_d3_matches_sphere_search():
    """d = 3 has a complex bin: compare with a dense search over directions on the sphere."""
    from scipy.optimize import minimize

    X, y = data(6, 3, seed=9, margin=0.3)
    Z = y[:, None] * X
    p = 2 / 3

    def ratio(v):
        m = (Z @ v).min()
        if m <= 0:
            return np.inf
        return _dft.dft_quasinorm(v, p) / m

    k = np.arange(40000) + 0.5
    phi = np.arccos(1 - 2 * k / k.size)
    th = np.pi * (1 + 5**0.5) * k
    V = np.c_[np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)]
    vals = np.array([ratio(v) for v in V])
    best = np.inf
    for i in np.argsort(vals)[:10]:
        res = minimize(ratio, V[i], method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-14})
        best = min(best, res.fun)
    sol = max_margin(X, y, norm="dft-lp", p=p)
    assert sol.objective <= best * (1 + 1e-9)
    assert sol.objective == pytest.approx(best, rel=1e-6)


# ----------------------------------------------------------------------------------------
# transformed (Yun Theorem 2)
# ----------------------------------------------------------------------------------------


def test_transformed_identity_is_l1_and_lp():
    X, y = data(20, 5, seed=10)
    I = np.eye(5)
    np.testing.assert_allclose(
        max_margin(X, y, norm="transformed", p=1, S=I).coef,
        max_margin(X, y, norm="l1").coef,
        atol=1e-13,
    )
    np.testing.assert_allclose(
        max_margin(X, y, norm="transformed", p=0.5, S=I, starts=3).coef,
        max_margin(X, y, norm="lp", p=0.5, starts=3).coef,
        atol=1e-12,
    )


@pytest.mark.parametrize("d", [5, 6])
def test_transformed_dft_is_dft_norm(d):
    # Yun Corollary 3: S = d^{(L-1)/2} F; the scale does not change the minimizer.
    X, y = data(15, d, seed=11)
    L = 3
    S = d ** ((L - 1) / 2) * _dft.dft_matrix(d)
    a = max_margin(X, y, norm="transformed", p=1, S=S)
    b = max_margin(X, y, norm="dft-l1")
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-9)
    assert a.objective == pytest.approx(b.objective / d ** ((L - 1) / 2), rel=1e-9)
    # p < 1: every point found with the complex S is a dft-lp stationary point
    c = max_margin(X, y, norm="transformed", p=2 / L, S=S, starts=3)
    for pt in c.stationary_points:
        cert = stationarity(pt.coef, X, y, norm="dft-lp", p=2 / L, zero_tol=1e-7)
        assert cert.residual < 1e-7


@pytest.mark.parametrize("kind", ["real", "complex"])
def test_transformed_square_matches_cvxpy(kind):
    rng = np.random.default_rng(12)
    d = 5
    X, y = data(20, d, seed=12)
    Z = y[:, None] * X
    S = rng.standard_normal((d, d)) + np.eye(d) * 2
    if kind == "complex":
        S = S + 1j * rng.standard_normal((d, d))
    sol = max_margin(X, y, norm="transformed", p=1, S=S)
    value, b = cvx_margin(Z, "transformed", S=S)
    assert sol.objective == pytest.approx(value, rel=OBJ_RTOL)
    np.testing.assert_allclose(sol.coef, b, atol=COEF_RTOL * np.abs(b).max())
    np.testing.assert_allclose(S.T @ sol.rho, sol.coef, atol=1e-10)


@pytest.mark.parametrize("kind", ["real", "complex"])
def test_transformed_tall_S_matches_cvxpy(kind):
    # m > d: Yun's problem in rho, with S^T rho real.
    rng = np.random.default_rng(13)
    d, m = 4, 7
    X, y = data(15, d, seed=13)
    Z = y[:, None] * X
    S = rng.standard_normal((m, d))
    if kind == "complex":
        S = S + 1j * rng.standard_normal((m, d))
        rho = cp.Variable(m, complex=True)
        cons = [cp.real(Z @ S.T @ rho) >= 1, cp.imag(S.T @ rho) == 0]
    else:
        rho = cp.Variable(m)
        cons = [Z @ S.T @ rho >= 1]
    value = cvx_solve(cp.sum(cp.abs(rho)), cons)
    sol = max_margin(X, y, norm="transformed", p=1, S=S)
    assert sol.objective == pytest.approx(value, rel=OBJ_RTOL)
    np.testing.assert_allclose(np.imag(S.T @ sol.rho), 0, atol=1e-10)
    np.testing.assert_allclose(np.real(S.T @ sol.rho), sol.coef, atol=1e-10)
    # p < 1 runs and certifies on the same (constrained) problem
    sp = max_margin(X, y, norm="transformed", p=0.5, S=S, starts=2)
    assert sp.kkt_residual < 1e-8 and sp.objective > 0


# ----------------------------------------------------------------------------------------
# multi-class (Soudry eq. 4.1)
# ----------------------------------------------------------------------------------------


def multiclass_data(n, d, K, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((K, d))
    X = rng.standard_normal((4 * n, d))
    s = X @ W.T
    srt = np.sort(s, axis=1)
    keep = (srt[:, -1] - srt[:, -2]) > 0.3
    X = X[keep][:n]
    return X, np.argmax(X @ W.T, axis=1)


def test_multiclass_matches_cvxpy():
    X, lab = multiclass_data(30, 4, 3, seed=14)
    labels = np.array(["a", "b", "c"])[lab]
    sol = max_margin(X, labels, multiclass=True)
    assert isinstance(sol, MulticlassMarginSolution)
    np.testing.assert_array_equal(sol.classes, ["a", "b", "c"])
    K, d = 3, 4
    W = cp.Variable((K, d))
    cons = [(W[lab[n]] - W[k]) @ X[n] >= 1 for n in range(len(X)) for k in range(K) if k != lab[n]]
    value = cvx_solve(cp.sum_squares(W), cons)
    assert np.sum(sol.coef**2) == pytest.approx(value, rel=1e-8)
    np.testing.assert_allclose(sol.coef, W.value, atol=1e-5)
    # KKT: w_k = sum_n (1[y_n = k] sum_j alpha_nj - alpha_nk) x_n, alpha >= 0
    A = sol.dual
    assert A.min() >= 0 and np.all(A[np.arange(len(X)), lab] == 0)
    onehot = np.eye(K)[lab]
    W_kkt = (onehot * A.sum(axis=1)[:, None] - A).T @ X
    np.testing.assert_allclose(W_kkt, sol.coef, atol=1e-9)
    for n, k in sol.support:
        assert (sol.coef[lab[n]] - sol.coef[k]) @ X[n] == pytest.approx(1.0, abs=1e-9)
    assert sol.margin == pytest.approx(1 / np.linalg.norm(sol.coef))


def test_multiclass_two_classes_is_binary_svm():
    # K = 2: W = [-v/2, v/2] with v the binary SVM (labels -1 -> class 0, +1 -> class 1).
    X, y = data(25, 3, seed=15)
    sol = max_margin(X, (y > 0).astype(int), multiclass=True)
    v = max_margin(X, y).coef
    np.testing.assert_allclose(sol.coef, np.vstack([-v / 2, v / 2]), atol=1e-10)


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------

XOR_X = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
XOR_Y = np.array([1, 1, -1, -1])


@pytest.mark.parametrize(
    "kw",
    [
        {"norm": "l1"},
        {"norm": "dft-l1"},
        {"norm": "lp", "p": 0.5},
        {"norm": "dft-lp", "p": 0.5},
        {"norm": "transformed", "p": 1, "S": np.eye(2) + 1j},
    ],
)
def test_not_separable(kw):
    with pytest.raises(NotSeparableError, match="not linearly separable"):
        max_margin(XOR_X, XOR_Y, **kw)
    with pytest.raises(NotSeparableError, match="zero vector"):
        max_margin([[1.0, 0.0], [0.0, 0.0]], [1, 1], **kw)


def test_multiclass_not_separable():
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(NotSeparableError, match="classes"):
        max_margin(X, [0, 1, 2], multiclass=True)


@pytest.mark.parametrize("p", [0, -0.5, 1.5, np.nan, np.inf, "a"])
def test_p_outside_range(p):
    with pytest.raises(ValueError, match="p"):
        max_margin(YUN_X, YUN_Y, norm="lp", p=p)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown norm 'l3'"):
        max_margin(YUN_X, YUN_Y, norm="l3")
    with pytest.raises(ValueError, match="needs the exponent p"):
        max_margin(YUN_X, YUN_Y, norm="dft-lp")
    with pytest.raises(ValueError, match="p = 1 norm"):
        max_margin(YUN_X, YUN_Y, norm="l1", p=0.5)
    with pytest.raises(ValueError, match="needs the matrix S"):
        max_margin(YUN_X, YUN_Y, norm="transformed", p=1)
    with pytest.raises(ValueError, match="singular"):
        max_margin(YUN_X, YUN_Y, norm="transformed", p=1, S=[[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="rows"):
        max_margin(YUN_X, YUN_Y, norm="transformed", p=1, S=[[1.0, 2.0]])
    with pytest.raises(ValueError, match="shape"):
        max_margin(YUN_X, YUN_Y, norm="transformed", p=1, S=np.eye(3))
    with pytest.raises(ValueError, match="only used with norm='transformed'"):
        max_margin(YUN_X, YUN_Y, norm="l1", S=np.eye(2))
    with pytest.raises(ValueError, match="multiclass"):
        max_margin(YUN_X, YUN_Y, norm="l1", multiclass=True)
    with pytest.raises(ValueError, match="at least 2 classes"):
        max_margin(YUN_X, [1, 1], multiclass=True)
    with pytest.raises(ValueError, match="starts"):
        max_margin(YUN_X, YUN_Y, norm="lp", p=0.5, starts=0)


# ----------------------------------------------------------------------------------------
# DFT conventions (references/_dft.py)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 4, 7, 8])
def test_dft_conventions(d):
    rng = np.random.default_rng(d)
    beta, x = rng.standard_normal(d), rng.standard_normal(d)
    F = _dft.dft_matrix(d)
    np.testing.assert_allclose(F @ F.conj().T, np.eye(d), atol=1e-13)  # unitary, F F^* = I
    np.testing.assert_allclose(_dft.dft(beta), F @ beta, atol=1e-13)
    # Parseval, Gunasekar eq. (36): x^T beta = sum_k conj(x_hat_k) beta_hat_k
    assert np.vdot(_dft.dft(x), _dft.dft(beta)) == pytest.approx(x @ beta, abs=1e-12)
    np.testing.assert_allclose(_dft.idft(_dft.dft(beta)), beta, atol=1e-13)
    # real Fourier coordinates: an orthogonal change of basis, inverse included
    Q = _dft.real_fourier_coords(np.eye(d))  # row j is Q^T e_j, so this is Q
    np.testing.assert_allclose(Q @ Q.T, np.eye(d), atol=1e-13)
    c = _dft.real_fourier_coords(beta)
    np.testing.assert_allclose(_dft.from_real_fourier_coords(c), beta, atol=1e-13)
    # the group form of the full-spectrum quasi-norm
    gid, mult, _ = _dft.fourier_groups(d)
    assert mult.sum() == d
    for p in (0.5, 2 / 3, 1.0):
        groups = np.sqrt(np.bincount(gid, weights=c**2))
        lhs = np.sum(_dft.fourier_weights(d, p) * groups**p)
        assert lhs == pytest.approx(np.sum(np.abs(F @ beta) ** p), rel=1e-12)
        assert _dft.dft_quasinorm(beta, p) == pytest.approx(lhs ** (1 / p), rel=1e-12)


def test_idft_rejects_non_symmetric_spectrum():
    with pytest.raises(ValueError, match="conjugate symmetric"):
        _dft.idft(np.array([1.0, 1j, 0.0]))


@pytest.mark.parametrize("d, L", [(5, 2), (6, 2), (5, 3), (6, 4)])
def test_gunasekar_lemma3_with_unitary_dft(d, L):
    # Lemma 3: beta_hat = prod_l w_hat_l; with the unitary F a factor d^{(L-1)/2} appears
    # (Yun et al.'s S = d^{(L-1)/2} F), checked on the model's own predictor.
    rng = np.random.default_rng(d + L)
    ws = [rng.standard_normal(d) for _ in range(L)]
    beta = fb.models.Convolutional(L).predictor(ws)
    prod = np.prod([_dft.dft(w) for w in ws], axis=0) * d ** ((L - 1) / 2)
    np.testing.assert_allclose(_dft.dft(beta), prod, atol=1e-12)
