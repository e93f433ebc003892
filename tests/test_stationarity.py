"""The sub-stationarity certificate of Gunasekar et al. (2018) eqs. (11)-(13).

Solver answers must have a tiny residual; perturbed or non-optimal directions a large one. The
multipliers are re-checked here against eqs. (12)-(13) computed directly with numpy.fft.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastbias as fb
from fastbias.references import StationarityResult, _dft, max_margin, stationarity


def data(n, d, seed, margin=0.1):
    return fb.datasets.separable_gaussian(n, d, margin=margin, seed=seed)


def perturb(beta, seed, size=1e-2):
    rng = np.random.default_rng(seed)
    return beta + size * np.linalg.norm(beta) * rng.standard_normal(beta.shape) / np.sqrt(beta.size)


# ----------------------------------------------------------------------------------------
# l2 (Soudry eq. 2.6)
# ----------------------------------------------------------------------------------------


def test_l2_certifies_svm_and_rejects_others():
    X, y = data(40, 5, seed=0)
    sol = max_margin(X, y)
    cert = stationarity(sol.coef, X, y)
    assert isinstance(cert, StationarityResult)
    assert cert.residual < 1e-10
    np.testing.assert_allclose(cert.alpha, sol.dual, atol=1e-9)
    np.testing.assert_array_equal(cert.active, sol.support)
    # any positive scaling is certified, with the scale reported
    c3 = stationarity(3.0 * sol.coef, X, y)
    assert c3.residual < 1e-10 and c3.scale == pytest.approx(1 / 3)
    assert stationarity(perturb(sol.coef, 1), X, y).residual > 1e-2
    # the L1 solution is feasible but not the L2 optimum
    l1 = max_margin(X, y, norm="l1")
    assert stationarity(l1.coef, X, y, norm="l2").residual > 1e-2


# ----------------------------------------------------------------------------------------
# l1 / lp (Gunasekar eqs. 12-13 with the identity transform)
# ----------------------------------------------------------------------------------------


def test_l1_certificate_matches_eq12_directly():
    X, y = data(30, 8, seed=1)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="l1")
    cert = stationarity(sol.coef, X, y, norm="l1")
    assert cert.residual < 1e-10
    g = Z.T @ cert.alpha  # eq. (11) with the identity transform
    on = np.abs(sol.coef) > 0
    np.testing.assert_allclose(g[on], np.sign(sol.coef[on]), atol=1e-9)  # eq. (12) on support
    assert np.abs(g[~on]).max(initial=0) <= 1 + 1e-9  # |z| <= 1 off the support
    np.testing.assert_array_equal(cert.support, np.flatnonzero(on))
    assert stationarity(perturb(sol.coef, 2), X, y, norm="l1").residual > 1e-2
    # the L2 SVM is not L1-optimal
    assert stationarity(max_margin(X, y).coef, X, y, norm="l1").residual > 1e-2


def test_l1_detects_violated_unit_bound_off_support():
    # beta = (0, 0.5) on Yun's example is optimal; beta = (1, 0) is a vertex (only x1 active)
    # with z off-support |g_2| = 2 > 1: eq. (12) fails although the support equation holds.
    X, y = np.array([[1.0, 2.0]]), np.array([1])
    assert stationarity([0.0, 0.5], X, y, norm="l1").residual < 1e-14
    bad = stationarity([1.0, 0.0], X, y, norm="l1")
    # best alpha balances the support equation alpha = 1 against |2 alpha| <= 1: alpha = 0.6
    assert bad.alpha[0] == pytest.approx(0.6)
    assert bad.distance == pytest.approx(np.sqrt(0.2))
    # for p < 1 zero entries are free, so the same vertex IS stationary (eq. 13)
    assert stationarity([1.0, 0.0], X, y, norm="lp", p=0.5).residual < 1e-14


@pytest.mark.parametrize("p", [0.5, 2 / 3])
def test_lp_certificate_matches_eq13_directly(p):
    X, y = data(12, 4, seed=3, margin=0.3)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="lp", p=p, starts=4)
    for pt in sol.stationary_points:
        cert = stationarity(pt.coef, X, y, norm="lp", p=p, zero_tol=1e-9)
        assert cert.residual < 1e-9
        g = Z.T @ cert.alpha
        on = np.abs(pt.coef) > 1e-9 * np.abs(pt.coef).max()
        b = pt.coef[on]
        np.testing.assert_allclose(g[on], p * np.abs(b) ** (p - 1) * np.sign(b), rtol=1e-8)
        # a dense perturbation of a sparse stationary point is not stationary
        assert stationarity(perturb(pt.coef, 4), X, y, norm="lp", p=p).residual > 1e-2


# ----------------------------------------------------------------------------------------
# DFT norms (eqs. 11-13 with x_hat = F x)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [7, 8])
def test_dft_l1_certificate_matches_eq12_directly(d):
    X, y = data(25, d, seed=5)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="dft-l1")
    cert = stationarity(sol.coef, X, y, norm="dft-l1", zero_tol=1e-7)
    assert cert.residual < 1e-8
    ghat = np.fft.fft(Z.T @ cert.alpha) / np.sqrt(d)  # sum_n alpha_n y_n x_hat_n (unitary)
    bhat = np.fft.fft(sol.coef) / np.sqrt(d)
    on = np.abs(bhat) > 1e-7 * np.abs(bhat).max()
    np.testing.assert_allclose(ghat[on], bhat[on] / np.abs(bhat[on]), atol=1e-7)  # phases
    assert np.abs(ghat).max() <= 1 + 1e-7  # |z[k]| <= 1 everywhere
    np.testing.assert_array_equal(cert.support, np.flatnonzero(on))
    # the support is conjugate symmetric
    assert set(cert.support.tolist()) == {(-k) % d for k in cert.support.tolist()}
    assert stationarity(perturb(sol.coef, 6), X, y, norm="dft-l1").residual > 1e-2
    assert stationarity(max_margin(X, y, norm="l1").coef, X, y, norm="dft-l1").residual > 1e-2


@pytest.mark.parametrize("d", [5, 6])
def test_dft_lp_certificate_matches_eq13_directly(d):
    p = 0.5
    X, y = data(10, d, seed=7, margin=0.3)
    Z = y[:, None] * X
    sol = max_margin(X, y, norm="dft-lp", p=p, starts=3)
    for pt in sol.stationary_points:
        cert = stationarity(pt.coef, X, y, norm="dft-lp", p=p, zero_tol=1e-7)
        assert cert.residual < 1e-8
        ghat = np.fft.fft(Z.T @ cert.alpha) / np.sqrt(d)
        bhat = np.fft.fft(pt.coef) / np.sqrt(d)
        on = np.abs(bhat) > 1e-7 * np.abs(bhat).max()
        want = p * np.abs(bhat[on]) ** (p - 1) * bhat[on] / np.abs(bhat[on])  # eq. (13)
        np.testing.assert_allclose(ghat[on], want, rtol=1e-6, atol=1e-9)
        assert stationarity(perturb(pt.coef, 8), X, y, norm="dft-lp", p=p).residual > 1e-2


def test_transformed_square_S_agrees_with_dft():
    d = 6
    X, y = data(15, d, seed=9)
    sol = max_margin(X, y, norm="dft-l1")
    F = _dft.dft_matrix(d)
    a = stationarity(sol.coef, X, y, norm="transformed", p=1, S=F, zero_tol=1e-7)
    assert a.residual < 1e-8
    np.testing.assert_array_equal(a.support, sol.certificate.support)
    bad = perturb(sol.coef, 10)
    r1 = stationarity(bad, X, y, norm="transformed", p=1, S=F).residual
    r2 = stationarity(bad, X, y, norm="dft-l1").residual
    assert r1 > 1e-2 and r2 > 1e-2


def test_scale_invariance():
    X, y = data(20, 5, seed=11)
    sol = max_margin(X, y, norm="l1")
    bad = perturb(sol.coef, 12)
    r = stationarity(bad, X, y, norm="l1").residual
    assert stationarity(7.0 * bad, X, y, norm="l1").residual == pytest.approx(r, rel=1e-10)
    # rescaling the data rescales beta by the inverse: same residual
    assert stationarity(bad / 3.0, 3.0 * X, y, norm="l1").residual == pytest.approx(r, rel=1e-9)


def test_errors():
    X, y = data(10, 3, seed=13)
    with pytest.raises(ValueError, match="does not separate"):
        stationarity(-max_margin(X, y).coef, X, y)
    with pytest.raises(ValueError, match="does not separate"):
        stationarity(np.zeros(3), X, y, norm="l1")
    with pytest.raises(ValueError, match="length 3"):
        stationarity(np.ones(4), X, y)
    with pytest.raises(ValueError, match="Unknown norm"):
        stationarity(np.ones(3), X, y, norm="linf")
    with pytest.raises(ValueError, match="p must be in"):
        stationarity(np.ones(3), X, y, norm="lp", p=2.0)
    with pytest.raises(ValueError, match="singular"):
        stationarity(np.ones(3), X, y, norm="transformed", p=1, S=np.ones((3, 3)))
    with pytest.raises(ValueError, match="m > d"):
        stationarity(np.ones(3), X, y, norm="transformed", p=1, S=np.vstack([np.eye(3)] * 2))


def test_certifies_a_trained_diagonal_network():
    """A depth-2 diagonal network trained by GD (Yun Corollary 2, p = 1): its direction has the
    sign pattern and active set of the L1 max-margin KKT point, certified with tolerances that
    match a finite run (margins resolved to 3e-2, zero entries to 1e-3); the L2 SVM is not."""
    import warnings

    from fastbias.models import Diagonal

    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 12))
    y = np.sign(rng.standard_normal(10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = fb.train(
            X, y, model=Diagonal(2), steps=10_000, lr=0.01, step_rule="loss-scaled",
            init="gaussian", init_scale=0.1, reference=None,
        )  # fmt: skip
    loose = {"norm": "l1", "tol": 3e-2, "zero_tol": 1e-3}
    cert = stationarity(run.coef, X, y, **loose)
    assert cert.residual < 1e-8
    l1 = max_margin(X, y, norm="l1")
    np.testing.assert_array_equal(cert.active, l1.support)
    np.testing.assert_array_equal(cert.support, l1.certificate.support)
    assert stationarity(max_margin(X, y).coef, X, y, **loose).residual > 0.1


# ----------------------------------------------------------------------------------------
# stationary_point_near: the stationary point a GD direction approaches
# ----------------------------------------------------------------------------------------


def test_stationary_point_near_a_trained_diagonal_network():
    """Theorem 2a's diagonal form (p = 2/3): normalized GD on a depth-3 diagonal network reaches
    a 2-sparse stationary point; Newton from beta(T) finds it exactly (eq. 13 re-checked with
    numpy: p |beta_k|^(p-1) sign(beta_k) = sum_n alpha_n y_n x_n[k] on the support)."""
    import warnings

    from fastbias.models import Diagonal

    X, y = data(6, 8, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = fb.train(X, y, model=Diagonal(3), steps=10**5, lr=0.05, step_rule="normalized",
                       reference=None)  # fmt: skip
    p = 2 / 3
    sp = fb.stationary_point_near(run.coef, X, y, norm="lp", p=p)
    assert sp.start == -1 and sp.certificate.residual < 1e-12
    b = sp.coef
    m = y * (X @ b)
    assert m.min() > 1 - 1e-12
    act = sp.certificate.active
    np.testing.assert_allclose(m[act], 1.0, atol=1e-12)
    supp = np.flatnonzero(np.abs(b) > 1e-9 * np.abs(b).max())
    assert supp.size < b.size  # sparse: a vertex-like stationary point
    lhs = p * np.abs(b[supp]) ** (p - 1) * np.sign(b[supp])
    rhs = (sp.certificate.alpha[:, None] * y[:, None] * X).sum(axis=0)[supp]
    np.testing.assert_allclose(rhs, lhs, rtol=1e-10)
    assert np.all(sp.certificate.alpha >= 0)
    np.testing.assert_allclose(sp.objective, np.sum(np.abs(b) ** p) ** (1 / p), rtol=1e-12)
    # beta(T) is that point up to the run's own resolution
    assert fb.diagnostics.angle_gap(run.coef, b) < 1e-9


def test_stationary_point_near_recovers_a_solver_point():
    """A certified DFT-L_(2/3) stationary point from max_margin, perturbed by 1e-4, polishes
    back onto itself."""
    X, y = data(6, 8, 1)
    sol = max_margin(X, y, norm="dft-lp", p=2 / 3)
    for point in sol.stationary_points:
        near = perturb(point.coef, seed=3, size=1e-5)
        sp = fb.stationary_point_near(near, X, y, norm="dft-lp", p=2 / 3, tol=1e-3, zero_tol=1e-3)
        # the solver's points are certified to 1e-8 (max_margin's tol for p < 1); Newton's
        # point to rounding, so they agree to the solver's accuracy
        scale = np.abs(point.coef).max()
        np.testing.assert_allclose(sp.coef, point.coef, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(sp.objective, point.objective, rtol=1e-7)
        assert sp.certificate.residual < 1e-12


def test_stationary_point_near_errors():
    X, y = data(6, 8, 0)
    beta = max_margin(X, y).coef
    with pytest.raises(ValueError, match="max_margin"):
        fb.stationary_point_near(beta, X, y, norm="l2")
    with pytest.raises(ValueError, match="separate"):
        fb.stationary_point_near(-beta, X, y, norm="lp", p=0.5)
    with pytest.raises(ValueError, match="p must be"):
        fb.stationary_point_near(beta, X, y, norm="lp", p=1.5)
    # the L2 SVM is not near a stationary point of the p = 1/2 problem: the one Newton finds
    # on its (full) support and active set is far from it
    with pytest.raises(fb.SolverError, match="max_move"):
        fb.stationary_point_near(beta, X, y, norm="lp", p=0.5, tol=1e-6, zero_tol=1e-6)
    with pytest.raises(ValueError, match="max_move"):
        fb.stationary_point_near(beta, X, y, norm="lp", p=0.5, max_move=-1)
