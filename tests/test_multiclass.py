"""Multi-class softmax cross-entropy (Soudry et al. 2018, Section 4.1 and Appendix C).

The compiled GD kernel against the NumPy reference; the reference gradient against finite
differences of eq. C.1; K = 2 against the binary logistic engine; the limit direction against
the K-class SVM of eq. 4.1 solved by cvxpy (Clarabel).
"""

import cvxpy as cp
import numpy as np
import pytest
from conftest import KERNEL_RTOL
from scipy.special import logsumexp

import fastbias as fb
from fastbias.exceptions import DivergenceError
from fastbias.kernels import STATUS_OK, STEP_RULE_CODES
from fastbias.kernels import _reference_optim as ref
from fastbias.kernels._numba_multiclass import gd_multiclass
from fastbias.optim.multiclass import multiclass_log_loss, train_multiclass


def _separable(n=40, d=3, K=3, seed=0, gap=0.3):
    """Points labelled by ``argmax_k x.w*_k``; those within ``gap`` of a boundary dropped."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, K))
    X = rng.standard_normal((n, d))
    S = np.sort(X @ W, axis=1)
    keep = S[:, -1] - S[:, -2] > gap
    return X[keep], np.argmax(X[keep] @ W, axis=1)


def _loss(X, W, labels):
    """Eq. C.1 directly: ``sum_n (logsumexp_k s_nk - s_{n y_n})``."""
    S = X @ W
    return float(np.sum(logsumexp(S, axis=1) - S[np.arange(len(X)), labels]))


def _svm(X, labels, K):
    """Eq. 4.1: ``min sum_k ||w_k||^2 s.t. (w_{y_n} - w_k).x_n >= 1`` for all n, k != y_n."""
    W = cp.Variable((X.shape[1], K))
    cons = [
        (W[:, labels[n]] - W[:, k]) @ X[n] >= 1
        for n in range(len(X))
        for k in range(K)
        if k != labels[n]
    ]
    cp.Problem(cp.Minimize(cp.sum_squares(W)), cons).solve(solver=cp.CLARABEL)
    return W.value


def test_reference_gradient_matches_finite_differences():
    X, labels = _separable(seed=1)
    W = np.random.default_rng(2).standard_normal((3, 3)) * 0.5
    s, Q, lsum, _ = ref.multiclass_weights(X, W, labels)
    grad = np.exp(s) * (X.T @ Q)
    h = 1e-6
    numeric = np.zeros_like(W)
    for j in range(3):
        for k in range(3):
            E = np.zeros_like(W)
            E[j, k] = h
            numeric[j, k] = (_loss(X, W + E, labels) - _loss(X, W - E, labels)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.exp(s) * lsum, _loss(X, W, labels), rtol=1e-12)
    assert np.abs(Q).max() <= 1.0 + 1e-15


@pytest.mark.parametrize("rule", ["fixed", "normalized", "loss-scaled"])
def test_compiled_matches_reference(rule):
    X, labels = _separable(n=30, d=4, K=4, seed=3)
    W0 = np.random.default_rng(4).standard_normal((4, 4)) * 0.3
    lr = 0.05 if rule != "fixed" else 1.0 / np.linalg.norm(X, 2) ** 2
    sched = np.array([1, 20, 150, 300])
    W = W0.copy()
    rec = np.zeros((4, 16))
    code = STEP_RULE_CODES[rule]
    assert gd_multiclass(X, labels, W, lr, code, 0, 120, sched[:2], rec[:2], 1e300) == (
        STATUS_OK,
        120,
    )
    gd_multiclass(X, labels, W, lr, code, 120, 180, sched[2:], rec[2:], 1e300)
    W_ref = W0.copy()
    rec_ref = np.zeros((4, 4, 4))
    ref.gd_multiclass(X, labels, W_ref, lr, code, 0, 300, sched, rec_ref, 1e300)
    np.testing.assert_allclose(rec.reshape(4, 4, 4), rec_ref, rtol=KERNEL_RTOL, atol=1e-13)
    np.testing.assert_allclose(W, W_ref, rtol=KERNEL_RTOL)


def test_two_classes_is_binary_logistic_gd():
    """K = 2: ``L(W) = sum_n log(1 + exp(-y_n (w_1 - w_0).x_n))``, and GD on W moves
    ``beta = w_1 - w_0`` by twice the step; the binary engine is an independent kernel."""
    X, y = fb.datasets.separable_gaussian(25, 4, margin=0.1, seed=5)
    labels = (y > 0).astype(int)
    lr = 0.5 / np.linalg.norm(X, 2) ** 2
    run = train_multiclass(X, labels, steps=500, lr=lr, record=1)
    binary = fb.train(X, y, loss="logistic", steps=500, lr=2 * lr, reference=None)
    beta = run.coef[:, 1] - run.coef[:, 0]
    np.testing.assert_allclose(beta, binary.coef, rtol=1e-10)
    np.testing.assert_allclose(run.coef.sum(axis=1), 0.0, atol=1e-12)  # from W0 = 0


def test_log_loss_is_exact_and_finite_when_the_loss_underflows():
    X, labels = _separable(seed=6)
    W = np.random.default_rng(0).standard_normal((3, 3))
    assert multiclass_log_loss(X, W, labels) == pytest.approx(np.log(_loss(X, W, labels)))
    W_sep = _svm(X, labels, 3) * 2000.0  # every margin >= 2000: L ~ exp(-2000)
    ll = multiclass_log_loss(X, W_sep, labels)
    U = X @ W_sep
    U = U - U[np.arange(len(X)), labels][:, None]
    U[np.arange(len(X)), labels] = -np.inf
    expected = logsumexp(U)  # log L ~ log sum_{n, k != y_n} exp(u_nk) when every term is tiny
    assert np.isfinite(ll) and ll == pytest.approx(expected, rel=1e-12)


def test_direction_converges_to_the_k_class_svm():
    """Appendix C: W(t)/||W(t)|| -> the direction of the solution of eq. 4.1 (cvxpy)."""
    X, labels = _separable(seed=0)
    W_svm = _svm(X, labels, 3)
    u = W_svm.ravel() / np.linalg.norm(W_svm)

    def gap(iterates):
        flat = iterates.reshape(len(iterates), -1)
        return 1.0 - flat @ u / np.linalg.norm(flat, axis=1)

    run = train_multiclass(X, labels, steps=10**5, record=1)
    g = gap(run.iterates)
    assert np.all(np.diff(g[2:]) < 0)  # decreasing from step 100 on
    assert g[-1] < 5e-4  # measured 2.6e-4 at 1e5 steps (7.9e-5 at 1e6)
    assert np.all(np.diff(run.log_loss) < 0)
    margin = 1.0 / np.linalg.norm(W_svm)  # the normalized margin eq. 4.1 maximizes
    assert np.all(run.normalized_margin < margin + 1e-12)
    assert run.normalized_margin[-1] > 0.9 * margin
    assert np.all(run.predict(X) == labels)
    # normalized steps reach the same direction much faster (margins grow linearly)
    fast = train_multiclass(X, labels, steps=10**5, lr=0.1, step_rule="normalized", record=1)
    assert gap(fast.iterates)[-1] < 1e-6
    # an angle gap of 1e-6 is an angle of ~1.4e-3: the margin agrees to that order
    assert fast.normalized_margin[-1] == pytest.approx(margin, rel=2e-3)


def test_labels_of_any_type():
    X, labels = _separable(seed=2)
    names = np.array(["cat", "dog", "emu"])[labels]
    run = train_multiclass(X, names, steps=200)
    np.testing.assert_array_equal(run.classes, ["cat", "dog", "emu"])
    assert run.coef.shape == (3, 3) and run.iterates.shape[1:] == (3, 3)


def test_bad_input():
    X, labels = _separable(seed=2)
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        train_multiclass(X, np.zeros(len(X)), steps=10)
    with pytest.raises(ValueError, match="one label per row"):
        train_multiclass(X, labels[:-1], steps=10)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or inf"):
        train_multiclass(bad, labels, steps=10)
    with pytest.raises(ValueError, match="labels contain NaN"):
        train_multiclass(X, np.where(labels == 0, np.nan, labels), steps=10)
    with pytest.raises(ValueError, match=r"W0 must have shape \(d, K\) = \(3, 3\)"):
        train_multiclass(X, labels, steps=10, W0=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="Unknown step_rule"):
        train_multiclass(X, labels, steps=10, step_rule="adam")
    with pytest.raises(ValueError, match="lr must be > 0"):
        train_multiclass(X, labels, steps=10, lr=-1.0)
    with pytest.raises(DivergenceError, match="blew up"):
        train_multiclass(X, labels, steps=1000, lr=1e4, W0=-10 * _svm(X, labels, 3))
