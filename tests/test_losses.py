"""Loss values and log-domain gradients, checked against direct formulas at moderate margins
and against asymptotic identities at margins in the thousands."""

import numpy as np
import pytest
from scipy.special import logsumexp

from fastbias import losses


def test_values_and_derivatives_moderate_margins():
    u = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(losses.exponential.value(u), np.exp(-u))
    np.testing.assert_allclose(losses.exponential.derivative(u), -np.exp(-u))
    np.testing.assert_allclose(losses.logistic.value(u), np.log1p(np.exp(-u)), rtol=1e-12)
    np.testing.assert_allclose(losses.logistic.derivative(u), -1 / (1 + np.exp(u)), rtol=1e-12)


def test_derivative_matches_finite_differences():
    u = np.linspace(-5, 5, 11)
    h = 1e-6
    for loss in (losses.exponential, losses.logistic):
        fd = (loss.value(u + h) - loss.value(u - h)) / (2 * h)
        np.testing.assert_allclose(loss.derivative(u), fd, rtol=1e-7)


def test_extreme_margins_no_overflow_or_nan():
    u = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        lv = losses.logistic.value(u)
        ld = losses.logistic.derivative(u)
        log_lv = losses.logistic.log_value(u)
    assert lv[0] == pytest.approx(1e4) and lv[-1] == 0.0
    assert ld[0] == -1.0 and ld[-1] == -0.0
    # log l(u) -> -u for large u: e^-u underflows but its log does not
    assert log_lv[-1] == pytest.approx(-1e4, rel=1e-15)
    assert log_lv[0] == pytest.approx(np.log(1e4), rel=1e-12)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_log_total_loss_at_margins_in_the_thousands(loss):
    m = np.array([3000.0, 3000.0, 3001.0, 5000.0])
    expected = -3000.0 + np.log(2 + np.exp(-1.0))  # both losses ~ e^-u in the tail
    assert losses.log_total_loss(m, loss) == pytest.approx(expected, rel=1e-14)
    with np.errstate(divide="ignore"):  # l(2000) underflows to 0: log 0 = -inf adds nothing
        direct = logsumexp(np.log(losses.get_loss(loss).value(m - 3000)))
    assert losses.log_total_loss(m - 3000, loss) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_gradient_weights_log_domain(loss):
    rng = np.random.default_rng(0)
    m = rng.normal(size=20) * 3
    log_scale, q = losses.gradient_weights(m, loss)
    np.testing.assert_allclose(
        np.exp(log_scale) * q, -losses.get_loss(loss).derivative(m), rtol=1e-13
    )
    # shifted by thousands: the direction is unchanged and the scale carries the shift
    log_scale2, q2 = losses.gradient_weights(m + 4000, loss)
    assert log_scale2 == pytest.approx(log_scale - 4000, abs=1e-9) or loss == "logistic"
    assert np.all(np.isfinite(q2)) and q2.max() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(q2, np.exp(-(m - m.min())), rtol=1e-12)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        losses.get_loss("hinge")
