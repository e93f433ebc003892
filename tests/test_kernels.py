"""Compiled kernels against the plain-NumPy reference (kernels/_reference.py)."""

import numpy as np
import pytest
from conftest import KERNEL_RTOL, random_separable

from fastbias.kernels import _numba, _reference


@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("shape", [(16, 2), (50, 7), (3, 5), (1, 1), (37, 13)])
def test_gd_linear_numba_matches_reference(loss, rule, shape):
    N, d = shape
    X, y = random_separable(N, d, seed=N * 100 + d)
    Z = X * y[:, None]
    lr = 0.5 / np.linalg.norm(Z, 2) ** 2
    rec = np.array([1, 2, 3, 10, 99, 500, 1000], dtype=np.int64)
    results = []
    for kernel in (_reference.gd_linear, _numba.gd_linear):
        w = np.full(d, 0.01)
        rec_w = np.zeros((len(rec), d))
        status = kernel(Z, w, lr, loss, rule, 0, 1000, rec, rec_w, -1e10)
        results.append((status, w, rec_w))
    (s_ref, w_ref, r_ref), (s_nb, w_nb, r_nb) = results
    assert s_ref == s_nb == (0, 1000)
    np.testing.assert_allclose(r_nb, r_ref, rtol=KERNEL_RTOL, atol=0)
    np.testing.assert_allclose(w_nb, w_ref, rtol=KERNEL_RTOL, atol=0)
    assert np.array_equal(r_nb[-1], w_nb)


def test_gd_linear_chunked_equals_single_call():
    X, y = random_separable(30, 4, seed=3)
    Z = X * y[:, None]
    rec = np.array([5, 50, 400], dtype=np.int64)
    w1, r1 = np.zeros(4), np.zeros((3, 4))
    _numba.gd_linear(Z, w1, 0.1, 0, 0, 0, 400, rec, r1, -1e10)
    w2, r2 = np.zeros(4), np.zeros((3, 4))
    _numba.gd_linear(Z, w2, 0.1, 0, 0, 0, 50, rec[:2], r2[:2], -1e10)
    _numba.gd_linear(Z, w2, 0.1, 0, 0, 50, 350, rec[2:], r2[2:], -1e10)
    assert np.array_equal(w1, w2) and np.array_equal(r1, r2)


@pytest.mark.parametrize("kernel", [_reference.gd_linear, _numba.gd_linear])
def test_divergence_detected_at_same_step(kernel):
    X, y = random_separable(20, 3, seed=1)
    Z = X * y[:, None]
    Z[0] *= -1  # one point on the wrong side makes a huge step overshoot
    w = np.zeros(3)
    status, step = kernel(Z, w, 1e3, 0, 0, 0, 1000, np.array([1000]), np.zeros((1, 3)), -50.0)
    assert status == 1 and 0 < step < 1000
    w_ref = np.zeros(3)
    ref = _reference.gd_linear(
        Z, w_ref, 1e3, 0, 0, 0, 1000, np.array([1000]), np.zeros((1, 3)), -50.0
    )
    assert ref == (status, step)


def test_exp_nonpos_accuracy():
    x = np.concatenate([[0.0, -1e-300, -0.5, -1.0, -700.0, -708.0], -np.linspace(0, 707, 10001)])
    out = x.copy()
    ubuf = np.empty_like(x)
    _numba.exp_nonpos(out, len(x), ubuf, ubuf.view(np.int64))
    np.testing.assert_allclose(out, np.exp(x), rtol=4e-16, atol=0)
    # below -708 the argument is clamped (the value is < 1e-307 of the largest weight, which is 1)
    y = np.array([-709.0, -1000.0, -np.inf])
    _numba.exp_nonpos(y, 3, ubuf, ubuf.view(np.int64))
    np.testing.assert_allclose(y, np.exp(-708.0), rtol=4e-16)


@pytest.mark.parametrize("loss", [0, 1])
def test_loss_weights_inplace_matches_reference(loss, rng):
    for m in (rng.normal(size=40) * 5, rng.normal(size=40) * 5 + 3000, rng.normal(size=40) - 3000):
        log_scale_ref, q_ref = _reference.loss_weights(m, loss)
        q = m.copy()
        buf = np.empty_like(m)
        log_scale, lsum = _numba.loss_weights_inplace(
            q, len(m), m.min(), loss, buf, buf.view(np.int64), np.empty_like(m), True
        )
        assert log_scale == pytest.approx(log_scale_ref, rel=1e-15)
        assert lsum == pytest.approx(_reference.scaled_loss_sum(m, loss), rel=1e-13)
        np.testing.assert_allclose(q, q_ref, rtol=1e-14, atol=1e-300)
        assert 0.5 <= q.max() <= 1.0 and np.all(q > 0)
