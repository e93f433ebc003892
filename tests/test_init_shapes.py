"""Issue 11.3: initializations in the shapes people pass (weight matrices, flat vectors,
column vectors) give the same run; anything else is an error that names the layouts."""

import numpy as np
import pytest

import fastbias as fb
from fastbias.models import Convolutional, Diagonal, FullyConnected, Network

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")

X = np.array([[1.0, 2.0], [2.0, 1.0], [-1.0, -2.0]])
y = np.array([1.0, 1.0, -1.0])
rng = np.random.default_rng(0)
W = rng.standard_normal((4, 2))  # (hidden, d): Vardi's W^(1), PyTorch's layout
v = rng.standard_normal(4)


def _params(model, init):
    return model.flatten(model.init_params(2, init, 1.0, 0))


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_network_accepts_weight_matrices_flat_vectors_and_transposes(activation):
    net = Network.fully_connected(2, [4], activation=activation)
    ref = _params(net, [W.ravel(), v])  # the flat layout of Network.shapes
    for init in ([W, v], [W.T, v], [W, v[None, :]], [W, v[:, None]], [W.ravel(), v[:, None]]):
        np.testing.assert_array_equal(_params(net, init), ref)
    np.testing.assert_array_equal(net.weight_matrices(ref)[0], W)
    a = fb.train(X, y, model=net, init=[W, v], steps=50, reference=None)
    b = fb.train(X, y, model=net, init=[W.ravel(), v], steps=50, reference=None)
    np.testing.assert_array_equal(a.scaled_params[0], b.scaled_params[0])


def test_network_weight_matrix_must_fit_the_pattern():
    net = Network.diagonal(2, 2, activation="relu")  # W^(1) is diagonal
    with pytest.raises(ValueError, match="nonzero entries where the network's pattern"):
        net.init_params(2, [np.ones((2, 2)), np.ones(2)])
    diag = net.init_params(2, [np.diag([2.0, 3.0]), np.ones(2)])
    np.testing.assert_array_equal(diag[0], [2.0, 3.0])
    with pytest.raises(ValueError, match=r"expected .*weight matrix W\^\(1\) of shape \(2, 2\)"):
        net.init_params(2, [np.ones((3, 3)), np.ones(2)])


def test_fully_connected_accepts_both_matrix_layouts():
    fc = FullyConnected([4])
    ref = _params(fc, [W.T, v])  # the model's (in, out) layout
    np.testing.assert_array_equal(_params(fc, [W, v]), ref)  # (out, in) = W^(1)
    np.testing.assert_array_equal(_params(fc, [W.T.ravel(), v[:, None]]), ref)
    with pytest.raises(ValueError, match=r"expected \(2, 4\), or a flat vector of 8 entries, or "
                       r"the \(out, in\) weight matrix \(4, 2\)"):  # fmt: skip
        fc.init_params(2, [np.ones((3, 3)), v])


def test_square_layers_keep_the_model_layout():
    fc = FullyConnected([2])
    M = np.array([[1.0, 2.0], [3.0, 4.0]])
    got = fc.init_params(2, [M, np.ones(2)])
    np.testing.assert_array_equal(got[0], M)  # (in, out), never transposed silently


@pytest.mark.parametrize("model", [Diagonal(2), Convolutional(2)])
def test_vector_layers_accept_rows_and_columns(model):
    ref = _params(model, [np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    got = _params(model, [np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]])])
    np.testing.assert_array_equal(got, ref)
    with pytest.raises(ValueError, match=r"init layer 2 has shape \(3,\); expected \(2,\)"):
        model.init_params(2, [np.ones(2), np.ones(3)])


def test_linear_init_as_row_or_column():
    a = fb.train(X, y, init=np.array([0.1, 0.2]), steps=20)
    b = fb.train(X, y, init=np.array([[0.1, 0.2]]), steps=20)
    c = fb.train(X, y, init=np.array([[0.1], [0.2]]), steps=20)
    np.testing.assert_array_equal(a.coef, b.coef)
    np.testing.assert_array_equal(a.coef, c.coef)
