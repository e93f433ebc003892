"""Gradient flow for networks of the class N (Vardi et al. 2022): the compiled velocity, the
match with small-step GD, and Theorem 3.2's construction under the flow the theorem is about."""

import numpy as np
import pytest

import fastbias as fb
from fastbias.analysis import optimality
from fastbias.kernels import _numba_flow as nf
from fastbias.models import Network

X32 = np.array([[1.0, 0.25], [-1.0, 0.25]])
THETA0 = np.array([0.1, 0.9, 0.1, -0.9, 0.8, 0.5])


@pytest.mark.parametrize("loss", [0, 1, 2])
def test_network_velocity_matches_numpy(loss):
    net = Network.fully_connected(3, [4], "relu")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3))
    y = np.sign(rng.standard_normal(7)) if loss != 2 else rng.standard_normal(7)
    theta = net.flatten(net.init_params(3, None, 1.0, 1))
    out = np.empty(theta.size)
    args = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((1, 1), np.int64),
            np.zeros(1, np.int64), np.zeros(1))  # fmt: skip
    s = 0.3
    ok = nf.flow_derivative(
        nf.KIND_NETWORK, s, theta, np.ascontiguousarray(X.T), y, loss, *args, out,
        net._kernel_args(7),
    )  # fmt: skip
    assert ok
    phi, J = net.forward(theta, X), net.gradient(theta, X)
    if loss == 2:
        neg_grad = J.T @ (y - phi)
    else:
        m = y * phi
        dl = np.exp(-m) if loss == 0 else 1.0 / (1.0 + np.exp(m))
        neg_grad = J.T @ (y * dl)
    np.testing.assert_allclose(out, np.exp(s) * neg_grad, rtol=1e-11, atol=1e-14)


def test_network_flow_matches_small_step_gd():
    net = Network.fully_connected(2, [3], "relu")
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 2))
    y = np.sign(X[:, 0] + 0.1)
    kw = dict(model=net, seed=2, init_scale=0.7)
    flow = fb.flow(X, y, t_max=2.0, rtol=1e-10, **kw)
    errors = []
    for lr in (1e-2, 1e-3):
        gd = fb.train(X, y, steps=int(round(2.0 / lr)), lr=lr, **kw)
        a = np.concatenate([p.ravel() for p in gd.params])
        b = np.concatenate([p.ravel() for p in flow.params])
        errors.append(np.max(np.abs(a - b)))
    assert errors[1] < errors[0] / 5 and errors[1] < 1e-2


def test_theorem_3_2_under_gradient_flow():
    """x1 = (1, 1/4), x2 = (-1, 1/4), neuron 1 active on both, neuron 2 on neither: the flow
    goes to w1 = (0, 2), v1 = 2, w2 = 0, v2 = 0 (normalized margin 1/8), which is not a local
    optimum of the max-margin problem (Vardi et al. Theorem 3.2)."""
    net = Network.fully_connected(2, [2], "relu")
    run = fb.flow(X32, np.ones(2), model=net, init=[THETA0[:4], THETA0[4:]], t_max=1e30)
    assert run.status == "completed" and run.coef is None
    theta = np.concatenate([p.ravel() for p in run.params])
    limit = np.array([0, 2, 0, 0, 2, 0]) / np.sqrt(8)
    assert np.linalg.norm(theta / np.linalg.norm(theta) - limit) < 0.05
    gamma = run.history["normalized_margin_theta"]
    assert np.all(np.diff(gamma[run.history["step"] >= 10]) > 0) and abs(gamma[-1] - 1 / 8) < 2e-3
    assert optimality(net, theta, X32, np.ones(2)).verdict == "not local"
