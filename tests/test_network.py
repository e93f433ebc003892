"""Networks of the class N (Vardi et al. 2022, Section 2): structure and bad input, the NumPy
forward pass and Jacobian against loops and finite differences, linear networks against the
existing FullyConnected / Diagonal models, and the compiled GD kernel against a plain-NumPy GD
loop (same step semantics as kernels._reference.gd_model)."""

import numpy as np
import pytest
from conftest import KERNEL_RTOL

from fastbias.kernels import _numba_network as K
from fastbias.kernels._reference import loss_weights, scaled_loss_sum
from fastbias.models import Diagonal, FullyConnected
from fastbias.models.network import Network

SHARED = Network(  # depth 3, a shared first layer (two copies of a 2-filter), sparse middle
    [
        (2, np.array([[0, 1, -1, -1], [-1, -1, 0, 1], [1, 0, -1, -1]])),
        (3, np.array([[0, -1, 1], [2, 0, -1]])),
        (2, np.array([[0, 1]])),
    ],
    "relu",
)

NETS = [
    Network.fully_connected(3, [4], "relu"),
    Network.fully_connected(3, [4, 3], "relu"),
    Network.fully_connected(3, [4, 3], "linear"),
    Network.diagonal(3, 3, "relu"),
    Network.diagonal(3, 2, "linear"),
    Network.conv_disjoint_patches(4, 2, "relu"),
    Network.locally_connected(4, [[0, 1], [2], [1, 3]], "relu"),
    Network.fully_connected(3, [], "linear"),
    SHARED,
]


def naive_forward(net, theta, X):
    """Phi by explicit loops over samples, neurons and weight positions (Vardi Section 2)."""
    out = np.empty(X.shape[0])
    layers = [theta[a:b] for a, b in zip(net.offsets[:-1], net.offsets[1:], strict=True)]
    for n, x in enumerate(X):
        h = list(x)
        for layer, (g, u) in enumerate(zip(net.patterns, layers, strict=True)):
            nxt = []
            for i in range(g.shape[0]):
                s = 0.0
                for j in range(g.shape[1]):
                    if g[i, j] >= 0:
                        s += u[g[i, j]] * h[j]
                nxt.append(s)
            if layer < net.depth - 1 and net.activation == "relu":
                nxt = [max(v, 0.0) for v in nxt]
            h = nxt
        out[n] = h[0]
    return out


def reference_gd(net, X, y, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor):
    """Plain-NumPy GD on a network: ``kernels._reference.gd_model`` with ``Phi(theta; x)``."""
    k = 0
    for t in range(step0, step0 + n_steps):
        out = net.forward(theta, X)
        if loss == 2:
            q = y - out
            log_scale, lsum = 0.0, 0.5 * float(q @ q)
            if not lsum < -floor:
                return 1, t
            dout = q
        else:
            m = y * out
            if not m.min() > floor:
                return 1, t
            log_scale, q = loss_weights(m, loss)
            lsum = scaled_loss_sum(m, loss)
            dout = q * y
        g = dout @ net.gradient(theta, X)
        gnorm = np.sqrt(g @ g)
        if not np.isfinite(gnorm):
            return 1, t
        if rule == 0:
            theta += lr * np.exp(log_scale) * g
        elif rule == 1:
            if gnorm > 0:
                theta += (lr / gnorm) * g
        else:
            theta += (lr / lsum) * g
        if k < len(rec_steps) and rec_steps[k] == t + 1:
            rec_theta[k] = theta
            k += 1
    return 0, step0 + n_steps


def _data(net, n=9, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, net.d))
    y = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    theta = rng.standard_normal(net.n_total) * 0.7
    return X, y, theta


# ---- structure and bad input -----------------------------------------------------------------
def test_builders_structure():
    fc = Network.fully_connected(3, [4, 2], "relu")
    assert fc.dims == [3, 4, 2, 1] and fc.depth == 3 and fc.n_layer_params == [12, 8, 2]
    assert fc.no_share and fc.is_fully_connected and fc.hidden_sizes == [4, 2]
    diag = Network.diagonal(5, 3)
    assert diag.no_share and not diag.is_fully_connected and diag.shapes(5) == [(5,)] * 3
    conv = Network.conv_disjoint_patches(6, 2, "linear")
    assert not conv.no_share and conv.n_layer_params == [2, 3] and conv.dims == [6, 3, 1]
    assert conv.linear_predictor and not fc.linear_predictor
    with pytest.raises(ValueError, match="input dimension is 3"):
        fc.shapes(4)


def test_weight_matrices_roundtrip_and_sharing():
    _, _, theta = _data(SHARED)
    Ws = SHARED.weight_matrices(theta)
    assert [W.shape for W in Ws] == [(3, 4), (2, 3), (1, 2)]
    np.testing.assert_array_equal(Ws[0][0, :2], theta[:2])  # the shared filter
    np.testing.assert_array_equal(Ws[0][1, 2:], theta[:2])
    np.testing.assert_array_equal(Ws[0][2, :2], theta[1::-1])
    back = SHARED.params_from_weights(Ws)
    np.testing.assert_array_equal(SHARED.flatten(back), theta)
    bad = [W.copy() for W in Ws]
    bad[0][1, 2] += 1.0
    with pytest.raises(ValueError, match="shared parameter"):
        SHARED.params_from_weights(bad)
    bad = [W.copy() for W in Ws]
    bad[0][0, 3] = 1.0
    with pytest.raises(ValueError, match="structural zero"):
        SHARED.params_from_weights(bad)


@pytest.mark.parametrize(
    "layers, kwargs, match",
    [
        ([(2, [[0, 1, 2]]), (1, [[0]])], {}, "references parameter 2"),
        ([(3, [[0, 1], [0, 1]]), (2, [[0, 1]])], {}, "parameter 2 of layer 1 sits at no"),
        ([[[0, 1], [2, 3]], [[0, 1, 2]]], {}, "3 columns but layer 1 has 2"),
        ([[[0, 1], [2, 3]], [[0, 1], [1, 0]]], {}, "one row"),
        ([[[0, -2]], [[0]]], {}, "-1 for a structural zero"),
        ([[[0.5, 1]], [[0]]], {}, "integers"),
        ([[[0, 1], [2, 3]], [[0, 1]]], {"activation": "tanh"}, "Unknown activation"),
        ([[[0, 1]], [[0]]], {"relu_grad_at_zero": 1.5}, r"\[0, 1\]"),
        ([[[0, 1], [2, 3]], [[4, 1]]], {"indexing": "global"}, "used in layers 1 and 2"),
        ([[[0, 1], [2, 3]], [[6, 4]]], {"indexing": "global"}, "numbered 4..5"),
        ([], {}, "non-empty"),
    ],
)
def test_bad_patterns(layers, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Network(layers, **kwargs)


def test_global_indexing_matches_layer_indexing():
    glob = Network([[[0, 1], [1, 2]], [[3, 4]]], "relu", indexing="global")
    loc = Network([[[0, 1], [1, 2]], [[0, 1]]], "relu")
    assert glob.n_layer_params == loc.n_layer_params == [3, 2]
    X, _, theta = _data(loc)
    np.testing.assert_array_equal(glob.forward(theta, X), loc.forward(theta, X))


def test_non_finite_data_and_bad_runner_input():
    net = Network.fully_connected(2, [3])
    X = np.array([[1.0, np.nan]])
    with pytest.raises(ValueError, match="NaN or inf"):
        net.forward(np.ones(net.n_total), X)
    with pytest.raises(ValueError, match="NaN or inf"):
        net.runner_xy(X, np.ones(1), 0)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        net.runner_xy(np.ones((2, 2)), np.array([1.0, 0.0]), 0)
    with pytest.raises(ValueError, match="float64"):
        net.runner_xy(np.ones((2, 2)), np.ones(2), 0, "extended")
    with pytest.raises(ValueError, match="runner_xy"):
        net.runner(np.ones((2, 2)), np.zeros(2), 0, "float64")
    with pytest.raises(ValueError, match="not a linear"):
        net.predictor(net.init_params(2))
    with pytest.raises(ValueError, match="parameters"):
        net.forward(np.ones(3), np.ones((1, 2)))


# ---- NumPy reference: forward and Jacobian ----------------------------------------------------
@pytest.mark.parametrize("net", NETS, ids=repr)
def test_forward_matches_loops_and_is_homogeneous(net):
    X, _, theta = _data(net)
    out = net.forward(theta, X)
    np.testing.assert_allclose(out, naive_forward(net, theta, X), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(net.forward(2.5 * theta, X), 2.5**net.depth * out, rtol=1e-12)
    params = net.unflatten(theta, net.d)
    np.testing.assert_allclose(net.forward(params, X), out)


@pytest.mark.parametrize("net", NETS, ids=repr)
def test_gradient_matches_finite_differences(net):
    X, _, theta = _data(net, seed=3)
    J = net.gradient(theta, X)
    h = 1e-6
    num = np.empty_like(J)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        num[:, k] = (net.forward(theta + e, X) - net.forward(theta - e, X)) / (2 * h)
    np.testing.assert_allclose(J, num, rtol=1e-6, atol=1e-7)


def test_conv_formula_of_theorem_4_4():
    """Phi(theta; x) = sum_j v_j sigma(w . x^(j)) with disjoint patches (Vardi Theorem 4.4)."""
    net = Network.conv_disjoint_patches(4, 2, "relu")
    w, v = np.array([0.3, -1.2]), np.array([0.7, -0.4])
    X = np.random.default_rng(1).standard_normal((6, 4))
    want = v[0] * np.maximum(X[:, :2] @ w, 0) + v[1] * np.maximum(X[:, 2:] @ w, 0)
    np.testing.assert_allclose(net.forward(np.r_[w, v], X), want, rtol=1e-14)


@pytest.mark.parametrize("c0", [0.0, 0.5, 1.0])
def test_relu_derivative_at_zero(c0):
    """At an exact kink the Jacobian uses sigma'(0) = relu_grad_at_zero."""
    net = Network.fully_connected(2, [1], "relu", relu_grad_at_zero=c0)
    theta = np.array([1.0, -1.0, 2.0])  # w = (1, -1), v = 2
    X = np.array([[3.0, 3.0]])  # w . x = 0
    J = net.gradient(theta, X)[0]
    np.testing.assert_array_equal(J, [2.0 * c0 * 3.0, 2.0 * c0 * 3.0, 0.0])
    args = net._kernel_args(1)
    g = K.network_vjp(X, theta, np.ones(1), *args)
    np.testing.assert_array_equal(g, J)


def test_patterns_norms_and_margins():
    net = Network.fully_connected(2, [3], "relu")
    W = np.array([[1.0, 0.0], [0.0, -2.0], [3.0, 4.0]])
    v = np.array([1.0, 1.0, -1.0])
    theta = net.flatten(net.params_from_weights([W, v]))
    X = np.array([[1.0, 1.0], [-1.0, 0.5]])
    pats = net.activation_patterns(theta, X)
    np.testing.assert_array_equal(pats[0], [[True, False, True], [False, False, False]])
    np.testing.assert_allclose(net.neuron_norms(theta)[0], [1.0, 2.0, 5.0])
    np.testing.assert_allclose(net.neuron_norms(theta, "out")[0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        net.layer_norms(net.unflatten(theta, 2)), [np.linalg.norm(W), np.linalg.norm(v)]
    )
    y = np.array([-1.0, 1.0])
    m = net.margins(theta, X, y)
    np.testing.assert_allclose(m, y * naive_forward(net, theta, X))
    rho = net.normalized_margin(net.unflatten(theta, 2), X, y)
    assert rho == pytest.approx(m.min() / np.linalg.norm(theta) ** 2)
    assert net.normalized_margin(net.unflatten(3 * theta, 2), X, y) == pytest.approx(rho)
    summ = net.summary(theta, X, y)
    assert summ["normalized_margin"] == pytest.approx(rho)
    assert summ["min_margin"] == pytest.approx(m.min())
    np.testing.assert_array_equal(summ["active"][0], pats[0])
    np.testing.assert_allclose(summ["neuron_norms"][0], [1.0, 2.0, 5.0])


# ---- linear networks are the existing models ---------------------------------------------------
@pytest.mark.parametrize("widths", [[4], [3, 2]])
def test_linear_fully_connected_matches_model(widths):
    d = 3
    net = Network.fully_connected(d, widths, "linear")
    fc = FullyConnected(widths)
    rng = np.random.default_rng(7)
    params = [rng.standard_normal(s) for s in fc.shapes(d)]
    # FullyConnected's W_l (d_{l-1} x d_l) is Vardi's W^(l) transposed
    theta = net.flatten(net.params_from_weights([W.T for W in params[:-1]] + [params[-1]]))
    X = rng.standard_normal((5, d))
    np.testing.assert_allclose(net.predictor(net.unflatten(theta, d)), fc.predictor(params))
    np.testing.assert_allclose(net.forward(theta, X), X @ fc.predictor(params), rtol=1e-13)
    for x in X:
        mine = net.gradient(theta, x[None, :])[0]
        theirs = fc.vjp(params, x)
        as_net = net.flatten(net.params_from_weights([W.T for W in theirs[:-1]] + [theirs[-1]]))
        np.testing.assert_allclose(mine, as_net, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("depth", [2, 3])
def test_linear_diagonal_matches_model(depth):
    d = 4
    net, diag = Network.diagonal(d, depth, "linear"), Diagonal(depth)
    rng = np.random.default_rng(depth)
    params = [rng.standard_normal(d) for _ in range(depth)]
    theta = diag.flatten(params)  # the same flat layout
    G = rng.standard_normal(d)
    np.testing.assert_allclose(net.predictor(params), diag.predictor(params), rtol=1e-14)
    np.testing.assert_allclose(
        net.flatten(net.vjp(params, G)), diag.flatten(diag.vjp(params, G)), rtol=1e-13
    )
    np.testing.assert_allclose(net.gradient(theta, G[None])[0], net.flatten(net.vjp(params, G)))


def test_linear_runner_on_folded_data_equals_runner_xy():
    net = Network.fully_connected(3, [4], "linear")
    X, y, theta = _data(net, n=12, seed=5)
    a, b = theta.copy(), theta.copy()
    rec = np.zeros((0, theta.size))
    sched = np.zeros(0, dtype=np.int64)
    net.runner(X * y[:, None], np.zeros(12), 0, "float64")(a, 0.01, 0, 0, 200, sched, rec, -1e300)
    net.runner_xy(X, y, 0)(b, 0.01, 0, 0, 200, sched, rec, -1e300)
    np.testing.assert_allclose(a, b, rtol=1e-13)


# ---- compiled kernel vs NumPy -------------------------------------------------------------------
@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("n", [1, 7, 300])
def test_kernel_forward_and_backward(net, n):
    X, _, theta = _data(net, n=n, seed=11)
    args = net._kernel_args(n)
    out = K.network_outputs(X, theta, *args[:-1])
    np.testing.assert_allclose(out, net.forward(theta, X), rtol=1e-12, atol=1e-13)
    dout = np.random.default_rng(2).standard_normal(n)
    g = K.network_vjp(X, theta, dout, *args)
    np.testing.assert_allclose(g, dout @ net.gradient(theta, X), rtol=1e-11, atol=1e-12)


def test_dense_and_sparse_layer_paths_agree():
    net = Network.fully_connected(20, [30], "relu")
    X, _, theta = _data(net, n=400, seed=4)
    args = net._kernel_args(400)
    assert args[3].tolist() == [True, False]  # BLAS for the hidden layer, loops for v
    loops = list(net._kernel_args(1))
    assert not loops[3].any()  # loops over the nonzeros
    dout = np.random.default_rng(3).standard_normal(400)
    blas = K.network_vjp(X, theta, dout, *args)
    np.testing.assert_allclose(
        blas, K.network_vjp(X, theta, dout, *loops), rtol=0, atol=1e-12 * np.abs(blas).max()
    )


@pytest.mark.parametrize("net", [NETS[1], NETS[3], NETS[5], SHARED], ids=repr)
@pytest.mark.parametrize("loss", [0, 1, 2])
@pytest.mark.parametrize("rule", [0, 1, 2])
def test_gd_kernel_matches_numpy_loop(net, loss, rule):
    # A seed whose trajectories keep every pre-activation away from 0: where one passes
    # through 0, rounding decides sigma' and the two runs part at that step (seeds 6, 10 and
    # 12 do this for the normalized rule, where a small gradient magnifies the difference).
    X, y, theta = _data(net, n=10, seed=7)
    if loss == 2:
        y = np.random.default_rng(1).standard_normal(10)
    steps = 300
    rec_steps = np.array([1, 50, 300], dtype=np.int64)
    a, b = theta.copy(), theta.copy()
    ra, rb = np.zeros((3, theta.size)), np.zeros((3, theta.size))
    lr = 0.01 if rule != 2 else 0.002
    sa = net.runner_xy(X, y, loss)(a, lr, rule, 0, steps, rec_steps, ra, -1e300)
    sb = reference_gd(net, X, y, b, lr, loss, rule, 0, steps, rec_steps, rb, -1e300)
    assert sa == sb == (0, steps)
    scale = np.abs(b).max()
    assert np.abs(a - b).max() <= KERNEL_RTOL * scale
    np.testing.assert_allclose(ra, rb, rtol=0, atol=KERNEL_RTOL * np.abs(rb).max())


def test_gd_kernel_divergence_matches_numpy_loop():
    net = Network.fully_connected(3, [4], "linear")
    X, y, theta = _data(net, n=8, seed=9)
    a, b = theta.copy(), theta.copy()
    rec = np.zeros((0, theta.size))
    sched = np.zeros(0, dtype=np.int64)
    floor = -25.0
    sa = net.runner_xy(X, y, 0)(a, 50.0, 0, 0, 100, sched, rec, floor)
    sb = reference_gd(net, X, y, b, 50.0, 0, 0, 0, 100, sched, rec, floor)
    assert sa[0] == sb[0] == 1 and sa[1] == sb[1]


def test_gd_kernel_rescaling_keeps_the_run():
    """Past ||theta|| = 2**16 the kernel carries theta = 2**e theta_s (exact power-of-two
    rescaling, as the other model kernels): the run is the unscaled NumPy run."""
    net = Network.fully_connected(2, [3], "relu")
    X = np.array([[1.0, 0.3], [-1.0, 0.4], [0.2, 1.0]])
    y = np.ones(3)
    theta = np.array([0.2, 0.9, -0.3, 0.8, 0.5, 0.6, 0.7, 0.6, 0.5])
    a, b = theta.copy(), theta.copy()
    rec = np.zeros((1, theta.size))
    sched = np.array([400], dtype=np.int64)
    scale = np.zeros(1, dtype=np.int64)
    rec_scale = np.zeros(1, dtype=np.int64)
    net.runner_xy(X, y, 0)(a, 0.2, 2, 0, 400, sched, rec, -1e300, scale, rec_scale)
    assert scale[0] > 0  # the norm passed 2**16: theta holds theta_s
    reference_gd(net, X, y, b, 0.2, 0, 2, 0, 400, sched, np.zeros((1, theta.size)), -1e300)
    np.testing.assert_allclose(np.ldexp(a, int(scale[0])), b, rtol=1e-10)
    np.testing.assert_allclose(np.ldexp(rec[0], int(rec_scale[0])), b, rtol=1e-10)


@pytest.mark.parametrize(
    "net",
    [
        Network.fully_connected(6, [5, 3]),
        Network.fully_connected(16, [8]),
        Network.diagonal(6, 3),
        Network.conv_disjoint_patches(6, 2),
        Network.fully_connected(6, [4], activation="linear"),
    ],
    ids=repr,
)
def test_row_batched_forward_and_norms_equal_the_one_row_methods(net):
    """forward_rows / neuron_norms_rows (what histories use) give, bit for bit, the numbers of
    forward, preactivations and neuron_norms called row by row (a zero input hits relu'(0))."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, net.d))
    X[0] = 0.0
    thetas = rng.standard_normal((4, net.n_total))
    out, hidden = net.forward_rows(thetas, X)
    norms = net.neuron_norms_rows(thetas)
    for k, th in enumerate(thetas):
        np.testing.assert_array_equal(out[k], net.forward(th, X))
        for got, want in zip(hidden, net.preactivations(th, X), strict=True):
            np.testing.assert_array_equal(got[k], want)
        for got, want in zip(norms, net.neuron_norms(th), strict=True):
            np.testing.assert_array_equal(got[k], want)
