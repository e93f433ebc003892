"""Tests of the exact homogeneous hard-margin solver (Soudry et al. 2018, eqs. 2.4, 2.6, 2.7)."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest

from fastbias.exceptions import NotSeparableError, SolverError
from fastbias.references import MaxMarginSolution, max_margin, w_tilde

mm_module = importlib.import_module("fastbias.references.l2_margin")


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------


def figure31_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Soudry et al. Figure 3.1: 4 support vectors and 12 points strictly outside the margin."""
    rng = np.random.default_rng(seed)
    sv = np.array([[0.5, 1.5], [1.5, 0.5]])
    extra = []
    while len(extra) < 6:
        p = rng.uniform(0.0, 3.0, size=2)
        if p.sum() >= 2.5:  # w_hat^T x = (x1 + x2) / 2 >= 1.25 > 1
            extra.append(p)
    extra = np.array(extra)
    X = np.vstack([sv, -sv, extra, -extra])
    y = np.r_[1.0, 1.0, -1.0, -1.0, np.ones(6), -np.ones(6)]
    return X, y


def random_separable(n: int, d: int, seed: int, gap: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian X labelled by a random w_star, points with |x.w_star| < gap dropped."""
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    X = rng.standard_normal((3 * n, d))
    s = X @ w_star
    X = X[np.abs(s) > gap][:n]
    assert X.shape[0] == n
    return X, np.sign(X @ w_star)


def independent_kkt(Z: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    """KKT of eq. (2.6) in absolute terms, computed here rather than by the solver."""
    m = Z @ w
    return {
        "primal": max(0.0, 1.0 - m.min()),
        "dual": max(0.0, -alpha.min()),
        "stationarity": np.linalg.norm(w - Z.T @ alpha) / max(1.0, np.linalg.norm(w)),
        "complementarity": np.max(np.abs(alpha * (m - 1.0))),
    }


# ----------------------------------------------------------------------------------------
# 1. Figure 3.1
# ----------------------------------------------------------------------------------------


def test_figure31_exact_solution_and_degenerate_dual():
    X, y = figure31_data()
    sol = max_margin(X, y)
    assert isinstance(sol, MaxMarginSolution)
    assert sol.status == "optimal"
    np.testing.assert_allclose(sol.coef, [0.5, 0.5], rtol=0, atol=1e-12)
    assert sol.margin == pytest.approx(np.sqrt(2.0), abs=1e-12)
    np.testing.assert_allclose(sol.direction, [2**-0.5, 2**-0.5], atol=1e-12)
    assert sol.support.dtype == np.int64
    np.testing.assert_array_equal(sol.support, [0, 1, 2, 3])
    assert sol.kkt_residual <= 1e-10
    a = sol.dual
    assert a.shape == (16,)
    np.testing.assert_array_equal(a[4:], 0.0)
    # z_3 = z_1 and z_4 = z_2, so only the sums are determined; min-norm splits them evenly.
    assert a[0] + a[2] == pytest.approx(0.25, abs=1e-12)
    assert a[1] + a[3] == pytest.approx(0.25, abs=1e-12)
    np.testing.assert_allclose(a[:4], 0.125, atol=1e-12)
    Z = y[:, None] * X
    assert max(independent_kkt(Z, sol.coef, a).values()) <= 1e-10


def test_solution_is_frozen_and_inputs_untouched():
    X, y = figure31_data()
    X0 = X.copy()
    sol = max_margin(X, y)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sol.margin = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        sol.coef[0] = 1.0  # read-only array
    assert X.flags.writeable
    np.testing.assert_array_equal(X, X0)


def test_labels_folded_into_x_and_single_point():
    X, y = figure31_data()
    a = max_margin(X, y)
    b = max_margin(y[:, None] * X)  # y=None means all +1 (labels folded in, as in the paper)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-13)
    # One sample: w_hat = z / ||z||^2, alpha = 1 / ||z||^2.
    sol = max_margin([[3.0, 4.0]], [1])
    np.testing.assert_allclose(sol.coef, [0.12, 0.16], atol=1e-15)
    np.testing.assert_allclose(sol.dual, [1 / 25], atol=1e-15)
    np.testing.assert_array_equal(sol.support, [0])


# ----------------------------------------------------------------------------------------
# 2./3. against an independent interior-point solver, KKT checked independently
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(20, 3), (200, 20), (2000, 200)])
def test_against_cvxpy_and_independent_kkt(n, d):
    cp = pytest.importorskip("cvxpy")
    X, y = random_separable(n, d, seed=n + d)
    Z = y[:, None] * X
    sol = max_margin(X, y)

    w = cp.Variable(d)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(w)), [Z @ w >= 1])
    # qdldl: Clarabel's "auto" choice is ~2x slower on this dense constraint matrix
    prob.solve(solver=cp.CLARABEL, direct_solve_method="qdldl")
    assert prob.status == cp.OPTIMAL
    w_cvx = np.asarray(w.value)

    rel = np.linalg.norm(sol.coef - w_cvx) / np.linalg.norm(w_cvx)
    assert rel <= 1e-6
    # Ours is optimal: no worse than cvxpy's objective, nor than its point made exactly
    # feasible (w / min z^T w), which is a true upper bound on the optimum.
    ours = float(sol.coef @ sol.coef)
    w_feas = w_cvx / min(1.0, float((Z @ w_cvx).min()))
    assert ours <= prob.value + 1e-9
    assert ours <= float(w_feas @ w_feas) + 1e-12 * ours

    assert sol.kkt_residual <= 1e-10
    kkt = independent_kkt(Z, sol.coef, sol.dual)
    assert max(kkt.values()) <= 1e-10, kkt
    # dual is zero off the support and the support is exactly the active set
    off = np.setdiff1d(np.arange(n), sol.support)
    np.testing.assert_array_equal(sol.dual[off], 0.0)
    m = Z @ sol.coef
    assert np.all(np.abs(m[sol.support] - 1.0) <= 1e-9)
    assert np.all(m[off] > 1.0 + 1e-9)
    assert sol.margin == pytest.approx(1.0 / np.linalg.norm(sol.coef), rel=1e-15)


def test_large_problem_is_solved_exactly():
    # (its time is measured in bench/bench_references.py, not asserted here)
    X, y = random_separable(2000, 200, seed=7)
    sol = max_margin(X, y)
    assert sol.kkt_residual <= 1e-10
    assert np.min(y * (X @ sol.coef)) == pytest.approx(1.0, abs=1e-9)


def test_min_norm_dual_when_least_squares_dual_is_negative():
    """Dependent support vectors whose least-squares dual has a negative entry.

    z = (1, t) with t in (-0.6, -1.8, -2.5, 0.5) all lie on z^T w_hat = 1 for w_hat = e_1.
    The minimum-norm solution of Z_S^T alpha = w_hat has alpha_2 < 0, so the minimum-norm
    *nonnegative* dual needs the null-space least-distance step.
    """
    cp = pytest.importorskip("cvxpy")
    t = np.array([-0.6, -1.8, -2.5, 0.5])
    X = np.vstack([np.c_[np.ones(4), t], [[2.0, 0.3], [3.0, -1.0]]])
    sol = max_margin(X)
    np.testing.assert_allclose(sol.coef, [1.0, 0.0], atol=1e-13)
    np.testing.assert_array_equal(sol.support, [0, 1, 2, 3])
    lsq = np.linalg.lstsq(X[:4].T, sol.coef, rcond=None)[0]
    assert lsq.min() < -0.01  # the case this test is about
    assert sol.dual.min() >= 0.0
    assert sol.kkt_residual <= 1e-10

    a = cp.Variable(4)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(a)), [X[:4].T @ a == [1.0, 0.0], a >= 0])
    prob.solve(solver=cp.CLARABEL)
    np.testing.assert_allclose(sol.dual[:4], a.value, atol=1e-7)
    assert sol.dual @ sol.dual <= prob.value + 1e-9


def test_badly_scaled_separable_data_is_not_rejected(monkeypatch):
    """Margin 1e-9 of the data scale: NNLS is borderline, the LP certifies separability."""
    calls = []
    real_lp = mm_module._lp_separator

    def spy(Z):
        calls.append(Z.shape)
        return real_lp(Z)

    monkeypatch.setattr(mm_module, "_lp_separator", spy)
    e = 1e-9
    X = np.array([[1.0, e], [-1.0, e], [0.3, 2 * e]])
    sol = max_margin(X, tol=1e-6)
    assert calls, "the LP feasibility check should have run"
    np.testing.assert_allclose(sol.coef, [0.0, 1.0 / e], rtol=1e-12, atol=1e-6)
    np.testing.assert_array_equal(sol.support, [0, 1])
    # Uniformly rescaling well-conditioned data changes nothing but units.
    Xf, yf = figure31_data()
    for c in (1e-6, 1e6):
        s = max_margin(c * Xf, yf)
        np.testing.assert_allclose(s.coef * c, [0.5, 0.5], atol=1e-12)
        assert s.kkt_residual <= 1e-10


def test_solver_error_when_tolerance_unreachable():
    X = np.array([[1.0, 1e-12], [-1.0, 1e-12], [0.3, 2e-12]])
    with pytest.raises(SolverError, match="KKT residual"):
        max_margin(X)


# ----------------------------------------------------------------------------------------
# 4. not separable
# ----------------------------------------------------------------------------------------

NOT_SEPARABLE = {
    # XOR with a constant-1 feature: no homogeneous separator in the lifted space either.
    "xor": (np.array([[0, 0, 1], [1, 1, 1], [0, 1, 1], [1, 0, 1]], float), [-1, -1, 1, 1]),
    "zero-row": (np.array([[1.0, 2.0], [0.0, 0.0], [2.0, 1.0]]), [1, -1, 1]),
    "x-and-minus-x-same-label": (np.array([[1.0, 2.0], [3.0, 0.5], [-1.0, -2.0]]), [1, 1, 1]),
    "same-point-both-labels": (np.array([[0.7, -0.2], [0.7, -0.2]]), [1, -1]),
}


@pytest.mark.parametrize("name", sorted(NOT_SEPARABLE))
def test_not_separable(name):
    X, y = NOT_SEPARABLE[name]
    with pytest.raises(NotSeparableError) as info:
        max_margin(X, y)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(
        "X, y are not linearly separable by a homogeneous (no-bias) linear classifier: "
    )
    if name == "zero-row":
        assert "sample 1 is the zero vector" in str(info.value)


def test_not_separable_random_data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 5))
    y = rng.choice([-1.0, 1.0], size=300)
    with pytest.raises(NotSeparableError):
        max_margin(X, y)


# ----------------------------------------------------------------------------------------
# 5. w_tilde (Theorem 4, eq. 2.7)
# ----------------------------------------------------------------------------------------


def unique_dual_data() -> tuple[np.ndarray, np.ndarray]:
    # w_hat = (0.5, 1), support {0, 1} with alpha = (0.25, 1); the others are off the margin.
    X = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 3.0], [1.0, 2.0], [-2.0, -3.0]])
    y = np.array([1.0, 1.0, 1.0, 1.0, -1.0])
    return X, y


def test_w_tilde_unique_dual_solves_eq_2_7():
    X, y = unique_dual_data()
    sol = max_margin(X, y)
    np.testing.assert_allclose(sol.coef, [0.5, 1.0], atol=1e-13)
    np.testing.assert_array_equal(sol.support, [0, 1])
    np.testing.assert_allclose(sol.dual, [0.25, 1.0, 0, 0, 0], atol=1e-13)
    lr = 0.05
    wt = sol.w_tilde(lr)
    Z = y[:, None] * X
    S = sol.support
    np.testing.assert_allclose(lr * np.exp(-Z[S] @ wt), sol.dual[S], rtol=0, atol=1e-10)
    # closed form: z_n^T w_tilde = log(lr / alpha_n)
    np.testing.assert_allclose(wt, [np.log(lr / 0.25) / 2, np.log(lr / 1.0)], atol=1e-12)
    np.testing.assert_allclose(w_tilde(X, y, lr), wt, atol=1e-14)


def test_w_tilde_is_the_limit_of_gd_residual():
    """rho(t) = w(t) - w_hat log t of exp-loss GD approaches w_tilde (Theorem 4)."""
    X, y = unique_dual_data()
    Z = y[:, None] * X
    sol = max_margin(X, y)
    lr = 0.05
    wt = sol.w_tilde(lr)
    w = np.zeros(2)
    errs = {}
    for t in range(1, 20001):
        w = w + lr * (np.exp(-Z @ w) @ Z)
        if t in (2000, 20000):
            errs[t] = np.linalg.norm(w - sol.coef * np.log(t) - wt)
    assert errs[20000] < 5e-3
    assert errs[20000] < 0.5 * errs[2000]


def test_w_tilde_degenerate_dual_stationarity():
    X, y = figure31_data()
    sol = max_margin(X, y)
    Z = y[:, None] * X
    S = sol.support
    for lr in (1.0 / np.linalg.norm(X, 2), 0.3):
        wt = sol.w_tilde(lr)
        lhs = lr * np.exp(-Z[S] @ wt) @ Z[S]
        np.testing.assert_allclose(lhs, sol.coef, rtol=0, atol=1e-13)
        # duplicates get equal multipliers, which here are the min-norm dual 0.125
        np.testing.assert_allclose(lr * np.exp(-Z[S] @ wt), 0.125, atol=1e-13)


def test_w_tilde_dependent_support_vectors():
    # Collinear support vectors (see test_min_norm_dual_...): the GD-limit dual is the one
    # from the convex problem, it need not be the min-norm one, but stationarity must hold.
    t = np.array([-0.6, -1.8, -2.5, 0.5])
    X = np.vstack([np.c_[np.ones(4), t], [[2.0, 0.3], [3.0, -1.0]]])
    sol = max_margin(X)
    lr = 0.2
    wt = sol.w_tilde(lr)
    S = sol.support
    e = lr * np.exp(-X[S] @ wt)
    np.testing.assert_allclose(e @ X[S], sol.coef, atol=1e-13)
    assert np.all(e > 0)


def test_w_tilde_adds_w0_component_outside_span():
    X2, y = unique_dual_data()
    X = np.c_[X2, np.zeros(len(X2))]  # data span the first two coordinates of R^3
    sol = max_margin(X, y)
    lr = 0.05
    base = sol.w_tilde(lr)
    np.testing.assert_allclose(base[2], 0.0, atol=1e-15)
    w0 = np.array([5.0, -7.0, 2.5])
    shifted = sol.w_tilde(lr, w0=w0)
    np.testing.assert_allclose(shifted, base + [0.0, 0.0, 2.5], atol=1e-14)


def test_w_tilde_support_vectors_do_not_span():
    # w_hat = e_1 with the single support vector e_1; the other points span R^3.
    X = np.array([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [2.0, -1.0, 0.5]])
    sol = max_margin(X)
    np.testing.assert_allclose(sol.coef, [1.0, 0.0, 0.0], atol=1e-13)
    np.testing.assert_array_equal(sol.support, [0])
    with pytest.raises(ValueError, match="Theorem 4 does not apply.*do not span.*1 < .* 3"):
        sol.w_tilde(0.1)


def test_w_tilde_zero_multiplier_on_support():
    # z_2 = (1, 1) is on the margin of w_hat = (1, 0) but has alpha = 0 in every dual.
    X = np.array([[1.0, 0.0], [1.0, 1.0]])
    sol = max_margin(X)
    np.testing.assert_array_equal(sol.support, [0, 1])
    np.testing.assert_allclose(sol.dual, [1.0, 0.0], atol=1e-13)
    with pytest.raises(ValueError, match="zero multiplier"):
        sol.w_tilde(0.1)


def test_w_tilde_input_checks():
    X, y = unique_dual_data()
    sol = max_margin(X, y)
    with pytest.raises(ValueError, match="lr"):
        sol.w_tilde(-1.0)
    with pytest.raises(ValueError, match="w0"):
        sol.w_tilde(0.1, w0=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="shape"):
        w_tilde(X[:, :1], y, 0.1, solution=sol)
