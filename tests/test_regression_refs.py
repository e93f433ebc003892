"""Tests of the regression limits of Yun et al. (2021), Section 5: Lemma 4, Theorem 5 and
Corollaries 5-7, Theorem 6.

Independent references used:
* Lemma 4: the closed forms for L = 2 (cosh, sinh) and L = 3 (sec, tan) derived from the ODE,
  scipy's ``solve_ivp`` on the ODE itself, and 40-digit mpmath quadrature/root finding;
* Theorem 5: mpmath Newton on the KKT system (L = 2), scipy's BFGS on the primal problem,
  linear programming (alpha -> 0) and weighted least squares (alpha -> inf, Remark 4);
* all limit theorems: direct simulation of gradient flow (``solve_ivp`` on the fastbias
  models' NumPy predictor/vjp) from the theorem's initialization.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.optimize import linprog, minimize

from fastbias.exceptions import SolverError
from fastbias.models import Convolutional, Diagonal, FullyConnected, Tensor
from fastbias.references.regression import (
    H_L,
    conv_even_regression_limit,
    diagonal_regression_limit,
    h_L,
    h_L_inverse,
    lemma4_radius,
    lemma4_solution,
    matrix_sensing_limit,
    q_minimizer,
    q_norm,
    two_layer_limit_point,
)
from fastbias.references.tensor_svd import data_tensor_stack

# ----------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------


def mp_h(u: float, L: int, dps: int = 40) -> mp.mpf:
    """h_L(u) at 40 digits: with the conserved p^2 - q^2 = 1 and T = q = cot(psi), the ODE
    gives c_L - u = int_0^psi sin^{L-3}; psi by bisection-safeguarded Newton in mpmath."""
    with mp.workdps(dps):
        n = L - 3
        c = mp.quad(lambda th: mp.cos(th) ** n, [0, mp.pi / 2])
        delta = c - mp.mpf(u)
        lo, hi = mp.mpf(0), mp.pi / 2
        psi = (lo + hi) / 2
        for _ in range(300):
            f = mp.quad(lambda th: mp.sin(th) ** n, [0, psi]) - delta
            if f > 0:
                hi = psi
            else:
                lo = psi
            nxt = psi - f / mp.sin(psi) ** n
            if not lo < nxt < hi:
                nxt = (lo + hi) / 2
            if abs(nxt - psi) < mp.mpf(10) ** (-dps + 5):
                psi = nxt
                break
            psi = nxt
        T = mp.cot(psi)
        return T * (1 + T * T) ** (mp.mpf(L - 1) / 2)


def ode_pq(ts: np.ndarray, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Lemma 4's ODE integrated by DOP853 at rtol 1e-13."""
    sol = solve_ivp(
        lambda t, z: [z[0] ** (L - 2) * z[1], z[0] ** (L - 1)],
        (0.0, float(ts[-1])),
        [1.0, 0.0],
        method="DOP853",
        t_eval=ts,
        rtol=1e-13,
        atol=1e-15,
    )
    return sol.y[0], sol.y[1]


def gradient_flow(model, X, y, params0, T=400.0):
    """Squared-loss gradient flow d theta/dt = -J_P^T X^T (X P(theta) - y) on the model's
    NumPy predictor/vjp, by DOP853. Returns (final params, beta, final loss)."""
    d = X.shape[1]
    theta0 = model.flatten(params0)

    def rhs(_t, th):
        params = model.unflatten(th, d)
        r = X @ model.predictor(params) - y
        return model.flatten(model.vjp(params, -(X.T @ r)))

    sol = solve_ivp(rhs, (0.0, T), theta0, method="DOP853", rtol=1e-12, atol=1e-14)
    params = model.unflatten(sol.y[:, -1], d)
    beta = model.predictor(params)
    return params, beta, 0.5 * float(np.sum((X @ beta - y) ** 2))


# ----------------------------------------------------------------------------------------
# Lemma 4
# ----------------------------------------------------------------------------------------


def test_radius_is_wallis_integral():
    assert lemma4_radius(2) == math.inf
    assert lemma4_radius(3) == pytest.approx(math.pi / 2, rel=1e-16)
    assert lemma4_radius(4) == pytest.approx(1.0, rel=1e-16)
    for L in (5, 6, 9):  # sqrt(pi) Gamma((L-2)/2) / (2 Gamma((L-1)/2))
        ref = math.sqrt(math.pi) * math.gamma((L - 2) / 2) / (2 * math.gamma((L - 1) / 2))
        assert lemma4_radius(L) == pytest.approx(ref, rel=1e-15)


def test_closed_forms_L2_L3():
    """p_2 = cosh, q_2 = sinh; p_3 = sec, q_3 = tan (substitute in the ODE)."""
    u = np.linspace(-3.0, 3.0, 41)
    assert np.allclose(h_L(u, 2), np.sinh(2 * u) / 2, rtol=1e-14, atol=0)
    assert np.allclose(h_L_inverse(np.sinh(2 * u) / 2, 2), u, rtol=1e-14, atol=1e-15)
    t = np.linspace(-50.0, 50.0, 31)
    H2 = t * np.arcsinh(2 * t) / 2 - (np.sqrt(1 + 4 * t**2) - 1) / 4
    assert np.allclose(H_L(t, 2), H2, rtol=1e-13, atol=1e-15)
    u3 = np.linspace(-1.5, 1.5, 31)
    assert np.allclose(h_L(u3, 3), np.tan(u3) / np.cos(u3) ** 2, rtol=1e-13, atol=0)
    p, q = lemma4_solution(u3, 3)
    assert np.allclose(p, 1 / np.cos(u3), rtol=1e-13) and np.allclose(q, np.tan(u3), rtol=1e-13)
    # h_3^{-1}: tan u = T solves T^3 + T = t (Cardano)
    for tv in (1e-8, 0.3, 2.0, 1e3, 1e9):
        T = np.roots([1.0, 0.0, 1.0, -tv])
        T = float(T[np.argmin(np.abs(T.imag))].real)
        assert h_L_inverse(tv, 3) == pytest.approx(math.atan(T), rel=1e-13)


@pytest.mark.parametrize("L", [3, 4, 5, 7, 10])
def test_h_against_mpmath(L):
    c = lemma4_radius(L)
    us = [1e-9, 0.05 * c, 0.37 * c, 0.8 * c, 0.97 * c, c * (1 - 1e-5), c * (1 - 1e-9)]
    got = h_L(np.array(us), L)
    for u, g in zip(us, got, strict=True):
        ref = float(mp_h(u, L))
        assert abs(g / ref - 1) < 1e-12, (L, u, g, ref)


@pytest.mark.parametrize("L", [2, 3, 4, 6])
def test_pq_against_ode_solver(L):
    """The ODE of Lemma 4 itself, integrated by scipy (rtol 1e-13)."""
    c = min(lemma4_radius(L), 3.0)
    ts = np.linspace(0.0, 0.9 * c, 12)
    p_ref, q_ref = ode_pq(ts, L)
    p, q = lemma4_solution(ts, L)
    assert np.allclose(p, p_ref, rtol=1e-10, atol=1e-12)
    assert np.allclose(q, q_ref, rtol=1e-10, atol=1e-12)
    assert np.allclose(h_L(ts, L), p_ref ** (L - 1) * q_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("L", [2, 3, 4, 6, 9])
def test_inverse_and_H_identities(L):
    rng = np.random.default_rng(L)
    t = np.concatenate(
        [[0.0, 1e-12, -1e-6], rng.standard_normal(200) * 10.0 ** rng.integers(-3, 6, 200)]
    )
    u = h_L_inverse(t, L)
    assert np.all(np.abs(u) < lemma4_radius(L))
    # h(h^{-1}(t)) = t where h is well conditioned (condition number u h'/h < ~500 here)
    ok = np.abs(t) < 100
    assert np.allclose(h_L(u[ok], L), t[ok], rtol=1e-12, atol=1e-300)
    # odd / even symmetry and monotonicity
    assert np.array_equal(h_L_inverse(-t, L), -u)
    assert np.array_equal(H_L(-t, L), H_L(t, L))
    ts = np.sort(t)
    assert np.all(np.diff(h_L_inverse(ts, L)) >= 0)
    # H_L(t) = int_0^t h_L^{-1} (adaptive quadrature of the compiled inverse)
    for tv in (0.01, 0.7, 5.0, 300.0):
        ref = quad(lambda s: h_L_inverse(s, L), 0.0, tv, epsabs=0, epsrel=1e-13, limit=200)[0]
        assert H_L(tv, L) == pytest.approx(ref, rel=1e-11)
    # small-t behaviour H ~ t^2/2 (Remark 4)
    assert H_L(1e-7, L) == pytest.approx(0.5e-14, rel=1e-9)


def test_remark4_growth():
    """H_L grows like c_L |t| (L >= 3) and like t (log 4t - 1) / 2 (L = 2) for large t."""
    for L in (3, 4, 6):
        t = 1e12
        assert H_L(t, L) / t == pytest.approx(lemma4_radius(L), rel=1e-3)
    t = 1e12
    assert H_L(t, 2) == pytest.approx(t * (math.log(4 * t) - 1) / 2, rel=1e-12)


def test_lemma4_shapes_and_errors():
    assert isinstance(h_L(0.3, 3), float)
    assert h_L(np.zeros((2, 3)), 4).shape == (2, 3)
    assert H_L([[1.0, 2.0]], 2).shape == (1, 2)
    with pytest.raises(ValueError, match="c_L"):
        h_L(1.0, 4)
    with pytest.raises(ValueError, match="NaN or inf"):
        H_L([1.0, np.nan], 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        h_L_inverse(np.inf, 3)
    with pytest.raises(ValueError, match="integer >= 2"):
        h_L(0.1, 1)
    with pytest.raises(ValueError, match="integer >= 2"):
        H_L(0.1, 2.5)


# ----------------------------------------------------------------------------------------
# Theorem 5: the Q minimizer
# ----------------------------------------------------------------------------------------


def test_q_norm_matches_definition():
    rho = np.array([0.3, -2.0, 1e-3])
    eta = np.array([1.0, -0.5, 2.0])
    alpha, L = 0.7, 3
    ref = alpha**2 * sum(
        e**2 * H_L(r / (alpha**L * abs(e) ** L), L) for r, e in zip(rho, eta, strict=True)
    )
    assert q_norm(rho, L, alpha, eta) == pytest.approx(ref, rel=1e-15)
    with pytest.raises(ValueError, match="eta_bar"):
        q_norm(rho, L, alpha, [1.0, 0.0, 1.0])


def test_q_minimizer_against_mpmath_L2():
    """For L = 2 the KKT system rho = alpha^2 sinh(2 X^T nu)/2, X rho = y in 50 digits."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 9))
    y = rng.standard_normal(4)
    for alpha in (1e-3, 0.4, 5.0):
        sol = q_minimizer(X, y, 2, alpha)
        with mp.workdps(50):
            Xm, ym, a = mp.matrix(X.tolist()), mp.matrix(y.tolist()), mp.mpf(alpha) ** 2
            nu = mp.matrix(sol.dual.tolist())
            for _ in range(20):
                g = Xm.T * nu
                rho = mp.matrix([a * mp.sinh(2 * g[j]) / 2 for j in range(9)])
                J = Xm * mp.diag([a * mp.cosh(2 * g[j]) for j in range(9)]) * Xm.T
                nu = nu - mp.lu_solve(J, Xm * rho - ym)
            g = Xm.T * nu
            ref = np.array([float(a * mp.sinh(2 * g[j]) / 2) for j in range(9)])
        assert np.allclose(sol.coef, ref, rtol=1e-11, atol=1e-13 * np.abs(ref).max())


@pytest.mark.parametrize("L", [2, 3, 4])
def test_q_minimizer_against_scipy_primal(L):
    """BFGS on Q over the affine set {X rho = y} (null-space coordinates)."""
    rng = np.random.default_rng(10 + L)
    X = rng.standard_normal((3, 7))
    y = rng.standard_normal(3)
    eta = rng.uniform(0.6, 1.5, 7) * rng.choice([-1.0, 1.0], 7)
    alpha = 0.8
    sol = q_minimizer(X, y, L, alpha, eta)
    assert sol.residual < 1e-13 and sol.stationarity < 1e-12
    rho0 = np.linalg.lstsq(X, y, rcond=None)[0]
    N = np.linalg.svd(X)[2][3:].T
    a = alpha**L * np.abs(eta) ** L
    b = alpha ** (L - 2) * np.abs(eta) ** (L - 2)

    def f(c):
        r = rho0 + N @ c
        return q_norm(r, L, alpha, eta), N.T @ (h_L_inverse(r / a, L) / b)

    res = minimize(f, np.zeros(N.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-13})
    assert np.allclose(rho0 + N @ res.x, sol.rho, atol=1e-7)
    assert sol.objective <= res.fun + 1e-12


def test_q_minimizer_small_alpha_is_weighted_l1():
    """Remark 4: alpha -> 0 gives min sum |rho_j| / |eta_j|^{L-2} (LP, HiGHS)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 6))
    y = rng.standard_normal(2)
    for L in (2, 3):
        eta = rng.uniform(0.5, 2.0, 6)
        w = eta ** (2.0 - L)
        lp = linprog(np.r_[w, w], A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None))
        l1 = lp.x[:6] - lp.x[6:]
        sol = q_minimizer(X, y, L, 1e-3, eta)
        assert np.allclose(sol.coef, l1, atol=2e-2 if L == 2 else 1e-4)


def test_q_minimizer_large_alpha_is_weighted_l2():
    """Remark 4: alpha -> inf gives min sum rho_j^2 / eta_j^{2L-2}: rho = W X^T (X W X^T)^-1 y."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 8))
    y = rng.standard_normal(3)
    for L in (2, 3, 5):
        eta = rng.uniform(0.5, 2.0, 8)
        W = np.diag(eta ** (2 * L - 2))
        ref = W @ X.T @ np.linalg.solve(X @ W @ X.T, y)
        sol = q_minimizer(X, y, L, 1e3, eta)
        assert np.allclose(sol.coef, ref, rtol=1e-5, atol=1e-6)


def test_section6_example_diagonal_and_conv():
    """Yun Section 6: x = (1, 2), y = 1. Small alpha: diagonal -> min L1 (0, 0.5), conv ->
    min DFT-L1 (1/3, 1/3); large alpha: weighted L2 (here (0.2, 0.4) with w_bar = 1)."""
    X, y = np.array([[1.0, 2.0]]), np.array([1.0])
    assert np.allclose(diagonal_regression_limit(X, y, 2, 1e-4).coef, [0, 0.5], atol=1e-4)
    assert np.allclose(diagonal_regression_limit(X, y, 3, 1e-3).coef, [0, 0.5], atol=1e-6)
    assert np.allclose(diagonal_regression_limit(X, y, 2, 1e3).coef, [0.2, 0.4], atol=1e-6)
    assert np.allclose(conv_even_regression_limit(X, y, 2, 1e-4).coef, [1 / 3, 1 / 3], atol=1e-4)
    assert np.allclose(conv_even_regression_limit(X, y, 3, 1e-3).coef, [1 / 3, 1 / 3], atol=1e-6)


def test_q_minimizer_errors():
    X = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="infeasible"):
        q_minimizer(X, [1.0, 0.0], 2, 1.0)
    sol = q_minimizer(X, [1.0, 2.0], 2, 1.0)  # consistent and rank deficient: fine
    assert np.allclose(X @ sol.coef, [1.0, 2.0])
    with pytest.raises(ValueError, match="eta_bar"):
        q_minimizer(X[:1], [1.0], 2, 1.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="alpha"):
        q_minimizer(X[:1], [1.0], 2, -1.0)
    with pytest.raises(ValueError, match="complex"):
        q_minimizer(X[:1], [1.0], 2, 1.0, None, np.eye(2) * 1j)
    with pytest.raises(ValueError, match="NaN"):
        q_minimizer([[np.nan, 1.0]], [1.0], 2, 1.0)
    with pytest.raises(SolverError, match="alpha"):
        q_minimizer(X[:1], [1.0], 6, 1e-5)


# ----------------------------------------------------------------------------------------
# gradient-flow simulations of the theorems
# ----------------------------------------------------------------------------------------


def test_corollary5_against_gradient_flow():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2, 4))
    y = np.array([0.7, -0.4])
    w_bar = rng.uniform(0.6, 1.2, 4) * rng.choice([-1.0, 1.0], 4)
    alpha, L = 0.8, 3
    model = Diagonal(L)
    params0 = [alpha * w_bar, alpha * w_bar, np.zeros(4)]
    _, beta, loss = gradient_flow(model, X, y, params0, T=300.0)
    assert loss < 1e-22
    pred = diagonal_regression_limit(X, y, L, alpha, w_bar)
    assert np.allclose(beta, pred.coef, atol=1e-8)
    # and the limit depends on alpha (the test is not trivially the min-norm solution)
    assert not np.allclose(
        pred.coef, diagonal_regression_limit(X, y, L, 3.0, w_bar).coef, atol=1e-3
    )


def test_theorem5_general_S_against_gradient_flow():
    """A Tensor network built from Assumption 1 with a random real S and orthonormal U_l."""
    rng = np.random.default_rng(6)
    d, m, L = 3, 4, 3
    ks = (5, 4, 6)
    U = [np.linalg.qr(rng.standard_normal((k, m)))[0] for k in ks]
    S = rng.standard_normal((m, d))
    stack = np.einsum("ji,aj,bj,cj->iabc", S, *U)  # M(e_i) = sum_j S_ji u1_j o u2_j o u3_j
    model = Tensor(stack)
    X = rng.standard_normal((2, d))
    y = np.array([0.5, -0.3])
    eta = rng.uniform(0.7, 1.3, m) * rng.choice([-1.0, 1.0], m)
    alpha = 0.9
    params0 = [alpha * U[0] @ eta, alpha * U[1] @ eta, np.zeros(ks[2])]
    _, beta, loss = gradient_flow(model, X, y, params0, T=300.0)
    assert loss < 1e-22
    sol = q_minimizer(X, y, L, alpha, eta, S)
    assert np.allclose(beta, sol.coef, atol=1e-8)


def test_corollary6_against_gradient_flow_and_normalization():
    """Even data, full-width conv, d = 5. Theorem 5 with S = d^{(L-1)/2} Re F matches the flow;
    the corollary's printed objective Q(F z) (no d^{-(L-1)/2}) does not."""
    d, L, alpha = 5, 2, 0.7
    X = np.array([[1.0, 0.4, -0.3, -0.3, 0.4], [0.2, 1.0, 0.5, 0.5, 1.0]])  # even rows
    y = np.array([1.0, -0.5])
    w_bar = np.array([1.0, 0.3, 0.1, 0.1, 0.3])  # even, F w_bar has no zero entry
    model = Convolutional(L)
    _, beta, loss = gradient_flow(model, X, y, [alpha * w_bar, np.zeros(d)], T=300.0)
    assert loss < 1e-22
    pred = conv_even_regression_limit(X, y, L, alpha, w_bar)
    assert np.allclose(beta, pred.coef, atol=1e-8)
    F = np.fft.fft(np.eye(d)) / np.sqrt(d)
    printed = q_minimizer(X, y, L, alpha, (F @ w_bar).real, F.real)  # objective Q(F z)
    assert np.max(np.abs(printed.coef - beta)) > 1e-3
    with pytest.raises(ValueError, match="even"):
        conv_even_regression_limit(np.array([[1.0, 2.0, 3.0]]), [1.0], 2, 1.0)


def test_corollary7_against_gradient_flow():
    """Deep matrix sensing, L = 2, commuting symmetric sensors, W_1(0) = alpha I, W_2(0) = 0."""
    rng = np.random.default_rng(7)
    d, alpha = 3, 0.6
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    A = np.stack([Q @ np.diag(rng.standard_normal(d)) @ Q.T for _ in range(2)])
    y = np.array([0.8, -0.3])

    def rhs(_t, z):
        W1, W2 = z[: d * d].reshape(d, d), z[d * d :].reshape(d, d)
        r = np.einsum("nab,ab->n", A, W1 @ W2) - y
        G = 2.0 * np.einsum("n,nab->ab", r, A)  # gradient of sum (y - <A, M>)^2 in M
        return np.concatenate([-(G @ W2.T).ravel(), -(W1.T @ G).ravel()])

    z0 = np.concatenate([(alpha * np.eye(d)).ravel(), np.zeros(d * d)])
    sol = solve_ivp(rhs, (0, 300.0), z0, method="DOP853", rtol=1e-12, atol=1e-14)
    M = sol.y[: d * d, -1].reshape(d, d) @ sol.y[d * d :, -1].reshape(d, d)
    pred = matrix_sensing_limit(A, y, 2, alpha)
    assert np.allclose(M, pred.matrix, atol=1e-8)
    B = rng.standard_normal((d, d))
    with pytest.raises(ValueError, match="commute"):
        matrix_sensing_limit(np.stack([A[0], B + B.T]), y, 2, alpha)
    with pytest.raises(ValueError, match="symmetric"):
        matrix_sensing_limit(np.stack([A[0], B]), y, 2, alpha)


# ----------------------------------------------------------------------------------------
# Theorem 6
# ----------------------------------------------------------------------------------------


def test_theorem6_small_filter_against_gradient_flow():
    """Convolutional(2, [2]) with d = 5: not orthogonally decomposable, Theorem 6 still exact."""
    rng = np.random.default_rng(8)
    d, alpha = 5, 0.7
    x = rng.standard_normal(d)
    y = 0.9
    model = Convolutional(2, [2])
    stack = data_tensor_stack(model, d)
    U1, s, V2t = np.linalg.svd(np.tensordot(x, stack, 1), full_matrices=False)
    v1 = U1 @ np.array([1.0, -0.8])  # [U_1^T v1]^2 - [U_2^T v2]^2 >= lambda > 0
    v2 = 0.3 * V2t[0] - 0.2 * V2t[1] + 0.3 * np.linalg.svd(V2t)[2][-1]
    params, beta, loss = gradient_flow(model, x[None], np.array([y]), [alpha * v1, alpha * v2])
    assert loss < 1e-22
    pred = two_layer_limit_point(model, x, y, [v1, v2], alpha)
    assert pred.condition > 0
    assert np.allclose(beta, pred.coef, atol=1e-8)
    assert np.allclose(params[0], pred.layers[0], atol=1e-8)
    assert np.allclose(params[1], pred.layers[1], atol=1e-8)


def test_theorem6_matches_corollary5_and_6():
    """Two independent formulas for the same limit (v2_bar = 0, one data point)."""
    x = np.array([1.0, 2.0])
    for alpha in (1e-3, 0.5, 30.0):
        wb = np.array([1.0, -0.7])
        t6 = two_layer_limit_point(Diagonal(2), x, 1.0, [wb, np.zeros(2)], alpha)
        c5 = diagonal_regression_limit(x[None], [1.0], 2, alpha, wb)
        assert np.allclose(t6.coef, c5.coef, rtol=1e-10, atol=1e-12)
        wb = np.array([1.0, 0.3])
        t6 = two_layer_limit_point(Convolutional(2), x, 1.0, [wb, np.zeros(2)], alpha)
        c6 = conv_even_regression_limit(x[None], [1.0], 2, alpha, wb)
        assert np.allclose(t6.coef, c6.coef, rtol=1e-10, atol=1e-12)


def test_section6_example_theorem6():
    """Yun Section 6 regression: x = (1, 2), y = 1, random initial directions. As alpha -> 0
    the limits are the min L2 (fully connected), min L1 (diagonal) and min DFT-L1 (conv)
    interpolants, independent of the initial direction."""
    x = np.array([1.0, 2.0])
    rng = np.random.default_rng(9)
    targets = {
        "fc": (FullyConnected([2]), [0.2, 0.4]),
        "diag": (Diagonal(2), [0.0, 0.5]),
        "conv": (Convolutional(2), [1 / 3, 1 / 3]),
    }
    for model, target in targets.values():
        stack = data_tensor_stack(model, 2)
        for _ in range(3):
            v1 = rng.standard_normal(stack.shape[1])
            v2 = 0.2 * rng.standard_normal(stack.shape[2])
            pt = two_layer_limit_point(model, x, 1.0, [v1, v2], 1e-3)
            assert x @ pt.coef == pytest.approx(1.0, abs=1e-12)
            assert np.allclose(pt.coef, target, atol=5e-3)


def test_theorem6_large_alpha_is_kernel_regime():
    """alpha -> inf with v2_bar = 0: beta -> K x (x^T K x)^{-1} y with the tangent kernel
    K_ij = v1^T M(e_i) M(e_j)^T v1 of the initialization (weighted L2)."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal(4)
    for model in (FullyConnected([3]), Convolutional(2, [3]), Diagonal(2)):
        stack = data_tensor_stack(model, 4)
        v1 = rng.standard_normal(stack.shape[1])
        A = np.einsum("iab,a->ib", stack, v1)
        K = A @ A.T
        ref = K @ x / (x @ K @ x) * 0.6
        pt = two_layer_limit_point(model, x, 0.6, [v1, np.zeros(stack.shape[2])], 1e4)
        assert np.allclose(pt.coef, ref, rtol=1e-6, atol=1e-9)


def test_theorem6_errors():
    x = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="range of g"):
        # eta_1 = -eta_2 on every direction: g(nu) < 0 for all nu, y > 0 cannot be fit
        two_layer_limit_point(Diagonal(2), x, 1.0, [[1.0, 1.0], [-1.0, -1.0]], 1.0)
    with pytest.raises(ValueError, match="2 layers|order"):
        two_layer_limit_point(Diagonal(3), x, 1.0, [[1.0, 1.0]] * 3, 1.0)
    with pytest.raises(ValueError, match="M\\(x\\) = 0"):
        two_layer_limit_point(Diagonal(2), [0.0, 0.0], 1.0, [[1.0, 1.0], [0.0, 0.0]], 1.0)
    with pytest.raises(ValueError, match="entries"):
        two_layer_limit_point(Diagonal(2), x, 1.0, [[1.0], [0.0, 0.0]], 1.0)


def test_theorem6_needs_one_point():
    X = np.array([[1.0, 2.0], [0.5, -1.0]])
    with pytest.raises(ValueError, match="single data point"):
        two_layer_limit_point(Diagonal(2), X, 1.0, [[1.0, 1.0], [0.0, 0.0]], 1.0)
    one = two_layer_limit_point(Diagonal(2), X[:1], 1.0, [[1.0, 1.0], [0.0, 0.0]], 1.0)
    assert X[0] @ one.coef == pytest.approx(1.0, abs=1e-12)
