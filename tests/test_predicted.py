"""predicted_limit: the theorem's prediction for each model, checked against the solvers and
against training runs; no guess where no theorem applies."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Network
from fastbias.references.predicted import predicted_limit

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")


def test_classification_predictions_name_their_theorem():
    X, y = random_separable(12, 5, seed=4)
    svm = fb.max_margin(X, y)
    for model in (Linear(), FullyConnected([3]), FullyConnected([4, 2])):
        pred = predicted_limit(model, X, y)
        assert pred.kind == "direction" and "L2 max margin" in pred.theorem
        np.testing.assert_allclose(pred.coef, svm.coef, rtol=1e-12)
    pred = predicted_limit(Diagonal(2), X, y)
    np.testing.assert_allclose(pred.coef, fb.max_margin(X, y, norm="l1").coef, rtol=1e-9)
    assert not pred.stationary_only and "Theorem 2" in pred.theorem
    pred = predicted_limit("diag:3", X, y)
    assert pred.stationary_only and "2/3" in pred.theorem
    cert = fb.stationarity(pred.coef, X, y, norm="lp", p=2 / 3)
    assert cert.residual < 1e-6
    pred = predicted_limit(Convolutional(2), X, y)
    np.testing.assert_allclose(pred.coef, fb.max_margin(X, y, norm="dft-l1").coef, rtol=1e-8)


def test_trained_networks_go_where_predicted():
    X, y = random_separable(12, 5, seed=4)
    for model, kw in (
        (FullyConnected([3]), dict(steps=20000, lr=0.05, step_rule="normalized")),
        (Diagonal(2), dict(steps=10000, lr=0.01, step_rule="loss-scaled", init_scale=2.0)),
    ):
        pred = predicted_limit(model, X, y)
        run = fb.train(X, y, model=model, reference=pred.direction, **kw)
        assert run.history["angle_gap"][-1] < 1e-3, model


def test_no_prediction_where_theory_has_none():
    X, y = random_separable(6, 5, seed=1)
    pred = predicted_limit(Convolutional(2, kernel_sizes=[2]), X, y)
    assert pred.kind == "none" and not pred and "Section 6" in pred.theorem
    pred = predicted_limit(Network.fully_connected(5, [3], "relu"), X, y)
    assert pred.kind == "none" and "KKT" in pred.reason


@pytest.mark.parametrize(
    "model, expected",
    [
        (FullyConnected([1]), [0.2, 0.4]),
        (Diagonal(2), [0.0, 0.5]),
        (Convolutional(2), [1 / 3, 1 / 3]),
    ],
    ids=["fc", "diagonal", "conv"],
)
def test_yun_section6_regression_example(model, expected):
    """x = (1, 2), y = 1, small initialization: Yun et al. Section 6 (via Theorem 6)."""
    X, y = np.array([[1.0, 2.0]]), np.array([1.0])
    init = [np.array([1.0, 1.0]).reshape(s) if np.prod(s) == 2 else np.ones(s)
            for s in model.shapes(2)]  # fmt: skip
    init[-1] = np.zeros_like(init[-1])
    pred = predicted_limit(model, X, y, loss="squared", init=init, init_scale=1e-4)
    assert pred.kind == "point" and "Yun" in pred.theorem
    np.testing.assert_allclose(pred.coef, expected, atol=1e-3)


def test_regression_prediction_matches_training():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((3, 6)), rng.standard_normal(3)
    w_bar = np.abs(rng.standard_normal(6)) + 0.5
    init = [w_bar, np.zeros(6)]
    pred = predicted_limit(Diagonal(2), X, y, loss="squared", init=init, init_scale=0.3)
    assert "Corollary 5" in pred.theorem
    run = fb.train(X, y, model=Diagonal(2), loss="squared", init=init, init_scale=0.3,
                   steps=200_000, lr=2e-3)  # fmt: skip
    np.testing.assert_allclose(run.coef, pred.coef, atol=5e-3)
    lin = predicted_limit(Linear(), X, y, loss="squared")
    np.testing.assert_allclose(lin.coef, np.linalg.pinv(X) @ y, rtol=1e-10)


def test_tensor_predictions():
    from fastbias.models import Tensor

    X, y = random_separable(10, 4, seed=6)
    via = predicted_limit(Tensor.diagonal(4, 2), X, y)
    np.testing.assert_allclose(via.coef, predicted_limit(Diagonal(2), X, y).coef, rtol=1e-12)
    assert "Tensor.diagonal" in via.theorem
    # an orthogonally decomposable M (Yun Assumption 1): M_j = U1 diag(S[:, j]) U2^T
    rng = np.random.default_rng(0)
    U1 = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    U2 = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    S = rng.standard_normal((5, 4))
    M = np.einsum("ak,kj,bk->jab", U1, S, U2)
    pred = predicted_limit(Tensor(M), X, y)
    assert pred.kind == "direction" and "Theorem 2" in pred.theorem
    _, S_found = pred.solution
    for row in S_found:  # S is determined up to the order and signs of its rows
        assert min(np.abs(np.abs(row) - np.abs(r)).max() for r in S) < 1e-10
    run = fb.train(X, y, model=Tensor(M), steps=20000, lr=0.02, step_rule="normalized",
                   reference=pred.direction)  # fmt: skip
    assert run.history["angle_gap"][-1] < 1e-3
    generic = Tensor(rng.standard_normal((4, 5, 5)))
    none = predicted_limit(generic, X, y)
    assert none.kind == "none" and "Assumption 1" in none.reason


def test_order3_tensor_assumption1():
    """L = 3: M_j = sum_k S[k, j] u1_k (x) u2_k (x) u3_k; the HOSVD finds S (up to row signs
    and order) and Theorem 2 gives an L_(2/3) stationary direction; a perturbed M fails."""
    from fastbias.models import Tensor
    from fastbias.references.predicted import orthogonal_decomposition

    rng = np.random.default_rng(2)
    Us = [np.linalg.qr(rng.standard_normal((5, 5)))[0] for _ in range(3)]
    S = rng.standard_normal((5, 4))
    M = np.einsum("ak,bk,ck,kj->jabc", *Us, S)
    S_found, why = orthogonal_decomposition(M)
    assert why == ""
    for row in S_found:
        assert min(np.abs(np.abs(row) - np.abs(r)).max() for r in S) < 1e-9
    X, y = random_separable(10, 4, seed=6)
    pred = predicted_limit(Tensor(M), X, y)
    assert pred.kind == "direction" and pred.stationary_only and "2/3" in pred.theorem
    M_bad = M + 1e-3 * rng.standard_normal(M.shape)
    assert orthogonal_decomposition(M_bad)[0] is None
