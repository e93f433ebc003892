"""Tests of the implicit regularizer R_P(beta) = min ||w||^2 s.t. P(w) = beta (Gunasekar et al.
2018, eq. 15) against the closed forms of Lemmas 5-7.

The numerical solver only sees the models' predictor/vjp; the closed forms are computed from
beta alone, so agreement checks both. For Lemma 7 the value is (L/d) sum_k |fft(beta)_k|^{2/L}
(derived in ``conv_regularizer``'s docstring); the printed ``L ||beta_hat||_{2/L}^{2/L}``
with the unnormalized DFT is off by the factor 1/d, which the test shows.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbias.exceptions import SolverError
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Tensor
from fastbias.references.regularizer import (
    conv_regularizer,
    diagonal_regularizer,
    fc_regularizer,
    implicit_regularizer,
)

REL = 1e-10


@pytest.mark.parametrize("widths", [[3], [4, 2], [2, 2, 3]])
def test_lemma5_fully_connected(widths):
    rng = np.random.default_rng(len(widths))
    beta = rng.standard_normal(4)
    L = len(widths) + 1
    res = implicit_regularizer(FullyConnected(widths), beta, n_starts=3)
    assert res.value == pytest.approx(fc_regularizer(beta, L), rel=REL)
    assert res.constraint_residual < 1e-13 and res.stationarity < 1e-7
    params = [np.asarray(p) for p in res.params]
    assert np.allclose(FullyConnected(widths).predictor(params), beta, atol=1e-13)
    # the minimizer is balanced: every layer has squared norm ||beta||^{2/L} (AM-GM)
    norms = np.array([np.sum(p**2) for p in params])
    assert np.allclose(norms, np.linalg.norm(beta) ** (2 / L), rtol=1e-7)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_lemma6_diagonal(L):
    rng = np.random.default_rng(10 + L)
    beta = rng.standard_normal(5)
    beta[1] = 0.0  # a zero coordinate: the quasi-norm's kink
    res = implicit_regularizer(Diagonal(L), beta, n_starts=3)
    assert res.value == pytest.approx(diagonal_regularizer(beta, L), rel=1e-9)
    assert np.allclose(Diagonal(L).predictor(res.params), beta, atol=1e-13)


@pytest.mark.parametrize("d", [4, 5])
@pytest.mark.parametrize("L", [2, 3])
def test_lemma7_convolutional_odd_and_even_d(d, L):
    rng = np.random.default_rng(d + 10 * L)
    beta = rng.standard_normal(d)
    res = implicit_regularizer(Convolutional(L), beta, n_starts=3)
    assert res.value == pytest.approx(conv_regularizer(beta, L), rel=REL)
    assert res.stationarity < 1e-7
    # equivalent form with the unitary DFT F: L d^{1/L - 1} ||F beta||_{2/L}^{2/L}
    unitary = np.fft.fft(beta) / np.sqrt(d)
    assert conv_regularizer(beta, L) == pytest.approx(
        L * d ** (1 / L - 1) * np.sum(np.abs(unitary) ** (2 / L)), rel=1e-13
    )
    # Lemma 7 as printed, with the paper's unnormalized DFT, is d times too large
    printed = L * np.sum(np.abs(np.fft.fft(beta)) ** (2 / L))
    assert printed / res.value == pytest.approx(d, rel=1e-9)


def test_linear_and_tensor_models():
    rng = np.random.default_rng(3)
    beta = rng.standard_normal(4)
    assert implicit_regularizer(Linear(), beta).value == pytest.approx(beta @ beta, rel=1e-14)
    # Tensor.diagonal is the diagonal network (Lemma 6), through the generic Tensor code
    res = implicit_regularizer(Tensor.diagonal(4, 3), beta, n_starts=3)
    assert res.value == pytest.approx(diagonal_regularizer(beta, 3), rel=REL)
    # Tensor.convolutional with full width is Lemma 7
    res = implicit_regularizer(Tensor.convolutional(4, 2), beta, n_starts=3)
    assert res.value == pytest.approx(conv_regularizer(beta, 2), rel=REL)


def test_homogeneity_and_zero():
    rng = np.random.default_rng(4)
    beta = rng.standard_normal(3)
    r1 = implicit_regularizer(Diagonal(3), beta, n_starts=2).value
    r2 = implicit_regularizer(Diagonal(3), 5.0 * beta, n_starts=2).value
    assert r2 == pytest.approx(5.0 ** (2 / 3) * r1, rel=1e-10)
    zero = implicit_regularizer(Diagonal(2), np.zeros(3))
    assert zero.value == 0.0 and all(np.all(p == 0) for p in zero.params)


def test_closed_form_values():
    beta = np.array([3.0, -4.0])
    assert fc_regularizer(beta, 2) == pytest.approx(2 * 5.0)
    assert diagonal_regularizer(beta, 2) == pytest.approx(2 * 7.0)
    assert diagonal_regularizer(beta, 1) == pytest.approx(25.0)
    assert conv_regularizer(beta, 1) == pytest.approx(25.0)  # Parseval


def test_errors():
    with pytest.raises(ValueError, match="NaN"):
        implicit_regularizer(Diagonal(2), [1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        implicit_regularizer(Diagonal(2), np.ones((2, 2)))
    with pytest.raises(ValueError, match="integer >= 1"):
        fc_regularizer([1.0], 0)
    # a Tensor network whose range misses e_2: beta_2 != 0 is unreachable
    M = np.zeros((2, 2, 2))
    M[0] = np.eye(2)
    with pytest.raises(SolverError, match="range"):
        implicit_regularizer(Tensor(M), [1.0, 1.0], n_starts=2)
