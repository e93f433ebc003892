"""step_rule="loss-scaled-backtracking": the compiled rule against a NumPy loop, for every
model kind, and its behaviour (eta grows, bad steps are undone, checkpoints carry it)."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.kernels._reference import loss_weights, scaled_loss_sum
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Network, Tensor
from fastbias.optim.backtracking import GROWTH

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")


def _reference(outputs_and_grad, theta, eta, steps):
    """NumPy loop: loss-scaled steps, eta *= GROWTH after a step that lowered the loss, the
    step undone and eta halved after one that raised it."""
    prev, prev_log_loss = None, None
    for _ in range(steps):
        m, grad_of = outputs_and_grad(theta)
        log_scale, q = loss_weights(m, 0)
        lsum = scaled_loss_sum(m, 0)
        log_loss = log_scale + np.log(lsum)
        if prev is not None and log_loss > prev_log_loss:
            theta = prev.copy()
            eta *= 0.5
            continue
        prev, prev_log_loss = theta.copy(), log_loss
        theta = theta + eta / lsum * grad_of(q)
        eta *= GROWTH
    return theta, eta


def _linear_maps(model, Z):
    d = Z.shape[1]

    def f(theta):
        params = model.unflatten(theta, d)
        return Z @ model.predictor(params), lambda q: model.flatten(model.vjp(params, Z.T @ q))

    return f


@pytest.mark.parametrize(
    "model",
    [Linear(), Diagonal(2), FullyConnected([3]), Convolutional(2), Tensor.diagonal(5, 3),
     Network.fully_connected(5, [3], "relu")],
    ids=["linear", "diag", "fc", "conv", "tensor", "relu"],
)  # fmt: skip
def test_backtracking_matches_the_numpy_loop(model):
    X, y = random_separable(10, 5, seed=3)
    lr, steps = 0.05, 400
    init = "gaussian" if not isinstance(model, Linear) else None
    rule = "loss-scaled-backtracking"
    run = fb.train(X, y, model=model, steps=steps, lr=lr, step_rule=rule, init=init,
                   reference=None)  # fmt: skip
    theta0 = model.flatten(model.init_params(5, init, 1.0, 0))
    if isinstance(model, Network):

        def f(theta):
            J = model.gradient(theta, X)
            return y * model.forward(theta, X), lambda q: J.T @ (y * q)
    else:
        f = _linear_maps(model, X * y[:, None])
    ref, _ = _reference(f, theta0, lr, steps)
    got = np.concatenate([np.ravel(p) for p in run.params])
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_backtracking_grows_eta_undoes_bad_steps_and_resumes(tmp_path):
    X, y = random_separable(12, 6, seed=1)
    kw = dict(model=Diagonal(2), lr=0.5, step_rule="loss-scaled-backtracking", reference=None)
    run = fb.train(X, y, steps=3000, **kw)
    log_loss = run.history["log_loss"]
    assert log_loss[-1] < log_loss[0] - 100
    # an initial eta far too large: plain loss-scaled steps blow up, backtracking recovers
    big = dict(kw, lr=50.0)
    with pytest.raises(fb.DivergenceError):
        fb.train(X, y, steps=3000, **dict(big, step_rule="loss-scaled"))
    recovered = fb.train(X, y, steps=3000, **big).history["log_loss"]
    assert np.isfinite(recovered[-1]) and recovered[-1] < recovered[0] - 100
    fb.train(X, y, steps=1000, checkpoint=tmp_path / "b.ckpt", **kw)
    resumed = fb.resume(tmp_path / "b.ckpt", steps=2000)
    for a, b in zip(resumed.params, run.params, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="does not compose with optimizer='momentum'"):
        fb.train(X, y, steps=10, step_rule="loss-scaled-backtracking", optimizer="momentum")
    with pytest.raises(ValueError, match="GD rule in float64"):
        fb.train(X, y, steps=10, step_rule="loss-scaled-backtracking", precision="extended")
