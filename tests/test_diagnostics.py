"""Gap formulas stay accurate when tiny; rate fits recover known power laws."""

import numpy as np
import pytest

from fastbias import diagnostics
from fastbias.optim.history import History


def test_angle_gap_accurate_at_1e_minus_20():
    v = np.array([1.0, 1.0]) / np.sqrt(2)
    eps = 1e-10  # rotation angle; 1 - cos = eps^2/2 = 5e-21, far below float64 1 - cos resolution
    c, s = np.cos(eps), np.sin(eps)
    w = 7.0 * np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])
    naive = 1 - w @ v / np.linalg.norm(w)
    assert naive == 0.0 or abs(naive - eps**2 / 2) > 1e-22  # the naive form is useless here
    assert diagnostics.angle_gap(w, v) == pytest.approx(eps**2 / 2, rel=1e-5)
    assert diagnostics.direction_distance(w, v) == pytest.approx(eps, rel=1e-5)


def test_angle_gap_longdouble():
    v = np.array([1.0, 0.0], dtype=np.longdouble)
    w = np.array([1.0, 1e-12], dtype=np.longdouble)
    gap = diagnostics.angle_gap(w, v)
    assert gap.dtype == np.longdouble
    assert float(gap) == pytest.approx(0.5e-24, rel=1e-6)


def test_margin_gap_small_and_exact():
    Z = np.array([[0.5, 1.5], [1.5, 0.5], [2.0, 3.0]])
    v = np.array([0.5, 0.5])
    w = v + np.array([1e-11, -1e-11])
    expected = np.min(Z @ v) / np.linalg.norm(v) - np.min(Z @ w) / np.linalg.norm(w)
    got = diagnostics.margin_gap(w, v, Z)
    # direct formula: each SV's margin moves by +-1e-11 * 1.0 / ||v||
    assert got == pytest.approx(1e-11 / np.linalg.norm(v), rel=1e-4)
    assert got == pytest.approx(expected, rel=1e-3)
    assert diagnostics.margin_gap(v * 3.0, v, Z) == 0.0


def test_norm_no_overflow():
    assert diagnostics.norm(np.array([3e300, 4e300])) == pytest.approx(5e300)
    assert diagnostics.norm(np.array([3e-300, 4e-300])) == pytest.approx(5e-300)


def test_fit_rates_recovers_exponents():
    t = np.unique(np.round(np.logspace(1, 8, 71))).astype(np.int64)
    logt = np.log(t)
    cols = {
        "step": t,
        "log_loss": np.log(3.0 / t),
        "norm": 0.7 * logt + 0.2,
        "angle_gap": 0.4 / logt**2,
        "direction_distance": 0.9 / logt,
        "margin_gap": 0.3 / logt,
    }
    h = History(cols, np.zeros((len(t), 1)), {"reference_norm": 0.7})
    report = diagnostics.fit_rates(h)
    assert report["loss"].exponent == pytest.approx(1.0, abs=1e-9)
    assert report["loss"].constant == pytest.approx(3.0, rel=1e-9)
    assert report["angle_gap"].exponent == pytest.approx(2.0, abs=1e-9)
    assert report["direction_distance"].constant == pytest.approx(0.9, rel=1e-9)
    assert report["norm"].exponent == pytest.approx(0.7, rel=1e-9)
    assert "angle_gap" in str(report)
    with pytest.raises(ValueError, match="at least 3 recorded steps"):
        diagnostics.fit_rates(h, t_min=10**9)


def test_deep_model_rates_report_margin_growth_and_its_limit():
    """FullyConnected([3]) -> L2 max margin (Gunasekar Theorem 1): the normalized margin in
    parameter space tends to gamma*/2 (||beta|| <= ||theta||^2 / 2 with equality at balanced
    layers); the fitted limit extrapolates to it from the recorded history."""
    from conftest import random_separable

    import fastbias as fb
    from fastbias.models import FullyConnected

    X, y = random_separable(20, 5, seed=1)
    target = fb.max_margin(X, y).margin / 2
    run = fb.train(X, y, model=FullyConnected([3]), steps=10**5, step_rule="normalized", lr=0.05)
    rates = run.rates()
    fit = rates["normalized_margin"]
    assert abs(fit.limit - target) < 0.01 * target
    assert fit.r2 > 0.9 and np.isnan(fit.theory)
    assert rates["theta_norm"].exponent > 0 and np.isnan(rates["theta_norm"].theory)
    assert "gamma ->" in str(rates)
    fixed = fb.train(X, y, model=FullyConnected([3]), steps=10**5).rates()
    assert fixed["theta_norm"].theory == 0.5  # ||theta||^L ~ log t for fixed steps, L = 2


def test_theorem4_residual_is_fitted():
    import fastbias as fb

    X, y = fb.datasets.soudry2018()
    rates = fb.train(X, y, steps=10**5).rates()
    fit = rates["theorem4_residual"]
    assert fit.exponent > 0 and np.isnan(fit.theory)
