"""Minimum-norm interpolants (Yun et al. 2021, Section 5), against the paper's worked example,
numpy's pseudo-inverse and cvxpy (Clarabel)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastbias.references import MinNormSolution, _dft, min_norm

cp = pytest.importorskip("cvxpy")


def test_yun_section6_regression_example():
    # x = (1, 2), y = 1. By hand: L2 = x / ||x||^2 = (0.2, 0.4); L1 puts everything on the
    # larger coordinate, (0, 0.5); DFT-L1 (d = 2, F = [[1, 1], [1, -1]] / sqrt 2) minimizes
    # sqrt(2) max(|z1|, |z2|) on z1 + 2 z2 = 1: z1 = z2 = 1/3.
    X, y = [[1.0, 2.0]], [1.0]
    l2 = min_norm(X, y, "l2")
    assert isinstance(l2, MinNormSolution)
    np.testing.assert_allclose(l2.coef, [0.2, 0.4], atol=1e-15)
    np.testing.assert_allclose(min_norm(X, y, "l1").coef, [0.0, 0.5], atol=1e-15)
    dft = min_norm(X, y, "dft-l1")
    np.testing.assert_allclose(dft.coef, [1 / 3, 1 / 3], atol=1e-12)
    assert dft.objective == pytest.approx(np.sqrt(2) / 3, rel=1e-12)


def cvx_min_norm(X, y, norm):
    z = cp.Variable(X.shape[1])
    obj = cp.norm1(z) if norm == "l1" else cp.sum(cp.abs(_dft.dft_matrix(X.shape[1]) @ z))
    prob = cp.Problem(cp.Minimize(obj), [X @ z == y])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return prob.value, z.value


@pytest.mark.parametrize("n, d, seed", [(4, 11, 0), (5, 12, 1), (3, 7, 2), (6, 6, 3)])
def test_random_instances(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    l2 = min_norm(X, y, "l2")
    np.testing.assert_allclose(l2.coef, np.linalg.pinv(X) @ y, atol=1e-12)
    np.testing.assert_allclose(X.T @ l2.dual, l2.coef, atol=1e-12)
    for norm in ("l1", "dft-l1"):
        sol = min_norm(X, y, norm)
        value, z = cvx_min_norm(X, y, norm)
        assert sol.objective == pytest.approx(value, rel=1e-8)
        np.testing.assert_allclose(sol.coef, z, atol=2e-6 * np.abs(z).max())
        np.testing.assert_allclose(X @ sol.coef, y, atol=1e-12)
        assert sol.kkt_residual < 1e-9
        # dual certificate: X^T nu in the subdifferential (eq. 12 of Gunasekar, unitary DFT)
        g = X.T @ sol.dual
        if norm == "l1":
            on = np.abs(sol.coef) > 1e-9 * np.abs(sol.coef).max()
            np.testing.assert_allclose(g[on], np.sign(sol.coef[on]), atol=1e-8)
            assert np.abs(g).max() <= 1 + 1e-8
            # strong duality: ||z||_1 = y^T nu
            assert y @ sol.dual == pytest.approx(sol.objective, rel=1e-9)
        else:
            ghat = np.fft.fft(g) / np.sqrt(d)
            assert np.abs(ghat).max() <= 1 + 1e-7
            assert y @ sol.dual == pytest.approx(sol.objective, rel=1e-7)


def test_zero_targets():
    X = np.random.default_rng(4).standard_normal((2, 5))
    for norm in ("l2", "l1", "dft-l1"):
        sol = min_norm(X, np.zeros(2), norm)
        np.testing.assert_array_equal(sol.coef, np.zeros(5))
        assert sol.objective == 0.0


def test_infeasible_interpolation():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 3))  # overdetermined, generic y is not in range(X)
    y = rng.standard_normal(6)
    for norm in ("l2", "l1", "dft-l1"):
        with pytest.raises(ValueError, match="no solution"):
            min_norm(X, y, norm)
    # rank deficient and inconsistent: two equal rows with different targets
    with pytest.raises(ValueError, match="not in the range"):
        min_norm([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [1.0, 2.0], "l1")
    # rank deficient but consistent is fine
    sol = min_norm([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], [1.0, 1.0], "l1")
    np.testing.assert_allclose(sol.coef, [0, 0, 1 / 3], atol=1e-14)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown norm"):
        min_norm([[1.0, 2.0]], [1.0], "lp")
    with pytest.raises(ValueError):
        min_norm([[1.0, 2.0]], [1.0, 2.0], "l2")
    with pytest.raises(ValueError, match="needs regression targets"):
        min_norm([[1.0, 2.0]], None, "l2")
