"""Tests of tensor singular vectors (Yun et al. 2021, eq. 8), the data tensors of fastbias
models, and the single-point limit directions of Theorem 3 / Corollary 4.

Known answers: numpy's SVD for order 2; rank-1 and orthogonally decomposable tensors built
from random orthonormal factors (every component is a singular tuple with its weight as
singular value); the data tensors of Yun Section 3 as built by ``fastbias.models.Tensor``;
Corollary 4's closed forms against the SVD route of Theorem 3.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Tensor
from fastbias.references.tensor_svd import (
    conv_filter_limit_direction,
    data_tensor,
    data_tensor_stack,
    singular_vector_residual,
    tensor_singular_vectors,
    two_layer_limit_direction,
)


def odeco(weights, ks, seed):
    """sum_j w_j u1_j o u2_j o ... with orthonormal factor columns."""
    rng = np.random.default_rng(seed)
    r = len(weights)
    factors = [np.linalg.qr(rng.standard_normal((k, r)))[0] for k in ks]
    T = np.zeros(ks)
    for j, w in enumerate(weights):
        comp = factors[0][:, j]
        for F in factors[1:]:
            comp = np.multiply.outer(comp, F[:, j])
        T += w * comp
    return T, factors


def aligned(u, v, tol):
    return abs(abs(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)) - 1) < tol


# ----------------------------------------------------------------------------------------
# singular vectors
# ----------------------------------------------------------------------------------------


def test_order2_matches_numpy_svd():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 5))
    res = tensor_singular_vectors(A, n_starts=3)
    U, s, Vt = np.linalg.svd(A)
    assert res.value == pytest.approx(s[0], rel=1e-12)
    assert res.converged and res.residual < 1e-12
    assert aligned(res.vectors[0], U[:, 0], 1e-12) and aligned(res.vectors[1], Vt[0], 1e-12)
    assert res.vectors[0] @ A @ res.vectors[1] == pytest.approx(s[0], rel=1e-12)


def test_rank_one_tensor():
    rng = np.random.default_rng(1)
    a, b, c = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal(5)
    T = np.einsum("i,j,k->ijk", a, b, c)
    res = tensor_singular_vectors(T, n_starts=2)
    norm = np.linalg.norm(a) * np.linalg.norm(b) * np.linalg.norm(c)
    assert res.value == pytest.approx(norm, rel=1e-12)
    for u, v in zip(res.vectors, (a, b, c), strict=True):
        assert aligned(u, v, 1e-12)
    # the canonical sign: the largest entry of u_1, u_2 is positive, s >= 0
    for u in res.vectors[:-1]:
        assert u[np.argmax(np.abs(u))] > 0
    assert np.einsum("ijk,i,j,k->", T, *res.vectors) == pytest.approx(res.value, rel=1e-12)


@pytest.mark.parametrize("order", [3, 4])
def test_orthogonally_decomposable(order):
    weights = [3.0, 2.0, 1.2, 0.5]
    ks = (5, 4, 6, 4)[:order]
    T, factors = odeco(weights, ks, seed=order)
    res = tensor_singular_vectors(T, n_starts=6, seed=1)
    assert res.value == pytest.approx(3.0, rel=1e-10)
    assert res.residual < 1e-10
    for u, F in zip(res.vectors, factors, strict=True):
        assert aligned(u, F[:, 0], 1e-10)
    # every component is a singular tuple of eq. (8), with residual 0
    for j in range(len(weights)):
        assert singular_vector_residual(T, [F[:, j] for F in factors]) < 1e-13
    # the power method from several starts finds components (values are the weights)
    assert all(np.min(np.abs(v - np.array(weights))) < 1e-8 for v in res.values)


def test_residual_is_scale_free_and_detects_non_singular_vectors():
    T, factors = odeco([2.0, 1.0], (3, 3, 3), seed=5)
    vecs = [F[:, 0] for F in factors]
    assert singular_vector_residual(T, [3 * vecs[0], -vecs[1], 0.1 * vecs[2]]) < 1e-13
    rng = np.random.default_rng(0)
    r = singular_vector_residual(T, [rng.standard_normal(3) for _ in range(3)])
    assert 1e-3 < r <= 2.0
    mixed = [(F[:, 0] + F[:, 1]) for F in factors]
    assert singular_vector_residual(T, mixed) > 1e-2


def test_singular_vector_errors():
    with pytest.raises(ValueError, match="order"):
        tensor_singular_vectors(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        tensor_singular_vectors(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="order 2 but 3"):
        singular_vector_residual(np.eye(2), [np.ones(2)] * 3)
    with pytest.raises(ValueError, match="zero"):
        singular_vector_residual(np.eye(2), [np.ones(2), np.zeros(2)])
    with pytest.raises(ValueError, match="k = 2"):
        singular_vector_residual(np.eye(2), [np.ones(3), np.ones(2)])
    with pytest.raises(ValueError, match="n_starts"):
        tensor_singular_vectors(np.eye(2), n_starts=0)
    zero = tensor_singular_vectors(np.zeros((2, 3)))
    assert zero.value == 0.0 and zero.residual == 0.0


# ----------------------------------------------------------------------------------------
# data tensors
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, tensor",
    [
        (Diagonal(3), Tensor.diagonal(4, 3)),
        (Convolutional(3), Tensor.convolutional(4, 3)),
        (Convolutional(2, [2]), Tensor.convolutional(4, [2, 4])),
        (FullyConnected([3]), Tensor.fully_connected(4, [3])),
        (FullyConnected([2, 3]), Tensor.fully_connected(4, [2, 3])),
    ],
)
def test_data_tensor_stack_matches_yun_section3(model, tensor):
    """Read off the predictor == the data tensors of Yun Section 3 / Appendix B."""
    stack = data_tensor_stack(model, 4)
    assert np.array_equal(stack, tensor.to_dense())
    x = np.array([0.3, -1.0, 2.0, 0.5])
    assert np.allclose(data_tensor(model, x), tensor.data_tensor(x))
    assert np.allclose(data_tensor(stack, x), tensor.data_tensor(x))


def test_data_tensor_of_tensor_model_and_linear():
    T = Tensor.diagonal(3, 2)
    assert data_tensor_stack(T, 3) is not None
    assert np.array_equal(data_tensor_stack(Linear(), 3), np.eye(3))
    with pytest.raises(ValueError, match="shape"):
        data_tensor(np.zeros((4, 2, 2)), np.ones(3))


# ----------------------------------------------------------------------------------------
# Theorem 3 and Corollary 4
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 2])
def test_corollary4_closed_forms_match_theorem3(seed, k):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(6)
    y = rng.choice([-1.0, 1.0])
    closed = conv_filter_limit_direction(x, y, k)
    generic = two_layer_limit_direction(Convolutional(2, [k]), x, y)
    assert closed.unique and generic.unique
    assert np.allclose(closed.direction, generic.direction, atol=1e-12)
    # the predicted layers are the top singular pair of M(x): eq. (8) holds for them
    Mx = data_tensor(Convolutional(2, [k]), x)
    assert singular_vector_residual(Mx, generic.layers) < 1e-13


def test_corollary4_low_and_high_pass():
    x = np.array([1.0, 0.8, 0.6, 0.4, 0.2])  # positive autocorrelation: low-pass
    d = conv_filter_limit_direction(x, 1.0, 2).direction
    ref = 2 * x + np.roll(x, -1) + np.roll(x, 1)
    assert np.allclose(d, ref / np.linalg.norm(ref))
    x = np.array([1.0, -0.8, 0.6, -0.4, 0.2])  # negative autocorrelation: high-pass
    d = conv_filter_limit_direction(x, -1.0, 2).direction
    ref = -(2 * x - np.roll(x, -1) - np.roll(x, 1))
    assert np.allclose(d, ref / np.linalg.norm(ref))
    assert np.allclose(conv_filter_limit_direction(x, 2.0, 1).direction, x / np.linalg.norm(x))


def test_no_prediction_on_ties():
    x = np.array([1.0, 0.0, 0.0, 0.0])  # x^T roll(x, -1) = 0: equal singular values
    res = conv_filter_limit_direction(x, 1.0, 2)
    assert not res.unique and res.direction is None and "equal" in res.reason
    gen = two_layer_limit_direction(Convolutional(2, [2]), x, 1.0)
    assert not gen.unique and "multiplicity 2" in gen.reason
    # diagonal network with two equal |x_j|: any mix of e_1, e_2 is an L1 solution
    dia = two_layer_limit_direction(Diagonal(2), np.array([1.0, -1.0, 0.5]), 1.0)
    assert not dia.unique and dia.direction is None


def test_theorem3_other_architectures():
    x = np.array([0.5, -2.0, 1.0])
    # diagonal: the L1 max-margin direction, the coordinate of largest |x_j|
    dia = two_layer_limit_direction(Diagonal(2), x, 1.0)
    assert np.allclose(dia.direction, [0.0, -1.0, 0.0])
    # fully connected: tied singular values, but beta's direction is still y x (Corollary 1)
    fc = two_layer_limit_direction(FullyConnected([4]), x, -1.0)
    assert fc.unique and np.allclose(fc.direction, -x / np.linalg.norm(x))
    # Theorem 3's initial condition lambda
    stack = data_tensor_stack(Diagonal(2), 3)
    cond = two_layer_limit_direction(stack, x, 1.0, init=[np.ones(3), 0.5 * np.ones(3)])
    assert cond.condition == pytest.approx(0.75)
    with pytest.raises(ValueError, match="nonzero"):
        two_layer_limit_direction(Diagonal(2), x, 0.0)
    with pytest.raises(ValueError, match="2-layer"):
        two_layer_limit_direction(Diagonal(3), x, 1.0)
    with pytest.raises(ValueError, match="kernel_size 1 and 2"):
        conv_filter_limit_direction(x, 1.0, 3)


def test_several_points_give_no_prediction():
    """Small filters with several data points: no known limit (Gunasekar et al. Section 6)."""
    X = np.array([[1.0, 0.5, -0.2, 0.3], [0.1, -1.0, 0.4, 0.2]])
    res = two_layer_limit_direction(Convolutional(2, [2]), X, 1.0)
    assert not res.unique and res.direction is None and "Section 6" in res.reason
    assert not conv_filter_limit_direction(X, 1.0, 2).unique
    one = two_layer_limit_direction(Convolutional(2, [2]), X[:1], 1.0)  # one row is fine
    assert one.unique
