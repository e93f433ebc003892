"""Deep models carry theta = 2**e * theta_s (exact power-of-two rescaling): runs whose
parameter norms and margins outgrow float64 keep moving, and nothing changes before that."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.kernels import _reference
from fastbias.models import Convolutional, Diagonal, FullyConnected, Tensor

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")


def _reference_run(model, Z, theta0, lr, rule, steps):
    d = Z.shape[1]
    theta = theta0.copy()
    rec = np.zeros((1, theta.size))
    _reference.gd_model(
        lambda th: model.predictor(model.unflatten(th, d)),
        lambda th, G: model.flatten(model.vjp(model.unflatten(th, d), G)),
        Z, np.zeros(len(Z)), theta, lr, 0, rule, 0, steps, np.array([steps]), rec, -1e300,
    )  # fmt: skip
    return theta


@pytest.mark.parametrize(
    "model",
    [Diagonal(2), Diagonal(3), FullyConnected([3]), Convolutional(2), Tensor.diagonal(5, 2)],
    ids=["diag2", "diag3", "fc", "conv", "tensor"],
)
def test_rescaled_runs_equal_the_unscaled_reference(model):
    """Once ||theta|| passes 2**16 the kernel works on theta_s = 2**-e theta, and still matches
    plain NumPy GD (which has not overflowed yet): normalized steps from ||theta|| ~ 4e4."""
    X, y = random_separable(12, 5, seed=7)
    Z = X * y[:, None]
    scale0, lr, steps = 3e4, 2e3, 300
    run = fb.train(
        X, y, model=model, steps=steps, lr=lr, step_rule="normalized", init_scale=scale0,
        reference=None,
    )  # fmt: skip
    assert run.theta_scale > 0, "the run never needed rescaling; make it longer"
    theta0 = model.flatten(model.init_params(5, None, scale0, 0))
    ref = _reference_run(model, Z, theta0, lr, 1, steps)
    got = model.flatten(run.params)
    np.testing.assert_allclose(got, ref, rtol=1e-9 * np.sqrt(steps), atol=0)
    hist = run.history
    np.testing.assert_allclose(hist["theta_norm"][-1], np.linalg.norm(ref), rtol=1e-9)
    np.testing.assert_allclose(np.exp(hist["log_theta_norm"][-1]), np.linalg.norm(ref), rtol=1e-9)


def test_loss_scaled_conv_runs_a_million_steps_past_the_float64_range():
    """Issue 5.1: plain float64 overflows once ||theta|| ** L passes 1.8e308; the scaled run
    keeps going (under a second), with a steady normalized margin and exact log-margins."""
    X, y = random_separable(10, 8, seed=3)
    model = Convolutional(2)
    run = fb.train(
        X, y, model=model, steps=10**6, lr=0.005, step_rule="loss-scaled", record=2,
        reference=None,
    )  # fmt: skip
    h = run.history
    assert run.status == "completed"
    assert np.all(np.isfinite(np.concatenate([p.ravel() for p in run.scaled_params])))
    log_norm_1e5 = h["log_theta_norm"][h["step"] == 10**5][0]
    assert model.depth * log_norm_1e5 > np.log(np.finfo(float).max), (
        "a plain float64 run would have overflowed by step 1e5"
    )
    with pytest.raises(OverflowError, match="log_theta_norm"):
        h["theta_norm"]  # not representable, but the log is
    assert "theta_norm" in h.overflowed and "theta_norm" not in h
    assert np.all(np.isfinite(h["log_theta_norm"]))
    for name, col in h.columns.items():
        assert np.all(np.isfinite(col)), name
    margin = h["normalized_margin_theta"]
    assert np.all(np.isfinite(margin)) and margin[-1] > 0
    late = margin[h["step"] >= 1000]
    assert late.min() > 0.9 * late.max()
    beyond = h["step"] >= 10**5
    assert np.all(h["loss"][beyond] == 0.0)  # the loss is below 1e-308, -log L above 1e308 ...
    with pytest.raises(OverflowError, match="log_min_margin"):
        h["log_loss"]
    log_m = h["log_min_margin"]  # ... but log(min margin) = log(-log L) is exact
    sep = h["step"] >= 100
    assert np.all(margin[sep] > 0) and log_m[-1] > 2 * 709
    expected = model.depth * h["log_theta_norm"][sep] + np.log(margin[sep])
    np.testing.assert_allclose(log_m[sep], expected, rtol=1e-12)


def test_margins_of_1e4_keep_moving():
    """No step is silently zero: at margins ~1e4 (exp(-1e4) underflows) normalized steps
    still move the direction, and the log-loss is reported exactly."""
    X, y = random_separable(15, 6, seed=2)
    run = fb.train(
        X, y, model=Diagonal(2), steps=20000, lr=0.2, step_rule="normalized", reference=None
    )
    h = run.history
    big = h["min_margin"] > 1e4
    assert big.sum() >= 3
    # L = sum_n exp(-m_n), exactly (the trajectory of normalized steps is chaotic, so which
    # samples share the minimum margin at a recorded step depends on round-off)
    m = (X * y[:, None]) @ h.iterates[big].T
    s = m.min(axis=0)
    exact = -s + np.log(np.exp(-(m - s)).sum(axis=0))
    np.testing.assert_allclose(h["log_loss"][big], exact, rtol=1e-10)
    assert np.all(np.abs(exact + s) < np.log(15))  # and so L ~ exp(-min margin)
    moved = np.abs(np.diff(h.iterates[big] / h["norm"][big, None], axis=0)).max(axis=1)
    assert np.all(moved > 0)


def test_loss_scaled_diagonal_reaches_the_l1_direction_fast():
    """Issue 5.3: Diagonal(2) goes to the L1 max-margin direction (Gunasekar Thm 2 / Yun
    Cor 2). Fixed steps are slow; loss-scaled steps get there within 1e4 steps."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 12))
    y = np.sign(rng.standard_normal(10))
    w1 = fb.max_margin(X, y, norm="l1").direction
    common = dict(model=Diagonal(2), steps=10**4, reference=None, init_scale=3.0)
    fixed = fb.train(X, y, **common)
    scaled = fb.train(X, y, lr=0.01, step_rule="loss-scaled", **common)

    def cosine(b):
        return float(b @ w1 / np.linalg.norm(b))

    assert cosine(scaled.coef) > 0.995
    assert cosine(fixed.coef) < 0.99
    assert 1 - cosine(scaled.coef) < (1 - cosine(fixed.coef)) / 100
