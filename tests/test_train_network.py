"""ReLU networks (Vardi et al. 2022) through fastbias.train: the same engine, history and
checkpoints as the linear models, and verdicts from fastbias.analysis on the result."""

import numpy as np
import pytest

import fastbias as fb
from fastbias.analysis import optimality
from fastbias.models import Network

X32 = np.array([[1.0, 0.25], [-1.0, 0.25]])  # Theorem 3.2's data, y = (1, 1)
Y32 = np.ones(2)
THETA0 = np.array([0.1, 0.9, 0.1, -0.9, 0.8, 0.5])  # [w1, w2, v]: neuron 1 active on both


def _direct(net, theta0, steps, lr):
    theta = theta0.copy()
    run = net.runner_xy(X32, Y32, 0)
    assert run(theta, lr, 1, 0, steps, np.zeros(0, np.int64), np.zeros((0, 6)), -1e300)[0] == 0
    return theta


def test_theorem_3_2_through_train():
    net = Network.fully_connected(2, [2], "relu")
    init = [THETA0[:4], THETA0[4:]]
    run = fb.train(X32, Y32, model=net, init=init, steps=20000, lr=0.05, step_rule="normalized")
    assert run.coef is None and run.reference is None
    theta = np.concatenate([p.ravel() for p in run.params])
    np.testing.assert_array_equal(theta, _direct(net, THETA0, 20000, 0.05))
    h = run.history
    for col in ("log_loss", "min_margin", "normalized_margin_theta", "active_fraction_1"):
        assert np.all(np.isfinite(h[col])), col
    late = h["normalized_margin_theta"][h["step"] >= 100]
    assert np.all(np.diff(late) > -1e-9) and late[-1] > late[0]
    # neuron 2 ends inactive on both inputs, neuron 1 active on both: half the pairs
    assert h["active_fraction_1"][-1] == pytest.approx(0.5)
    np.testing.assert_array_equal(h.arrays["active_1"][-1], [[True, False], [True, False]])
    norms = h.arrays["neuron_norms_1"]
    assert norms.shape == (len(h), 2) and norms[-1, 0] > 100 * norms[-1, 1]
    res = optimality(net, theta, X32, Y32)
    assert res.verdict == "not local"
    np.testing.assert_allclose(res.theta, [0, 2, 0, 0, 2, 0], atol=1e-9)


def test_network_resume_is_bit_identical(tmp_path):
    net = Network.fully_connected(2, [3], "relu")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 2))
    y = np.sign(X[:, 0] + 0.3)
    kw = dict(model=net, lr=0.02, seed=3, init_scale=0.5)
    fb.train(X, y, steps=300, checkpoint=tmp_path / "n.ckpt", **kw)
    resumed = fb.resume(tmp_path / "n.ckpt", steps=700)
    straight = fb.train(X, y, steps=1000, **kw)
    for a, b in zip(resumed.params, straight.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_network_squared_loss_fits():
    net = Network.fully_connected(3, [6], "relu")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 3))
    targets = rng.standard_normal(4)
    run = fb.train(X, targets, model=net, loss="squared", steps=20000, lr=0.02, seed=1)
    h = run.history
    assert h["log_loss"][-1] < h["log_loss"][0] - 5
    np.testing.assert_allclose(net.forward(run.params, X), targets, atol=0.05)


def test_network_errors():
    net = Network.fully_connected(2, [2], "relu")
    with pytest.raises(ValueError, match="no reference"):
        fb.train(X32, Y32, model=net, steps=10, reference=np.ones(2))
    with pytest.raises(ValueError, match="coordinate"):
        fb.train(X32, Y32, model=net, steps=10, optimizer="coordinate")
