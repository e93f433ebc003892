"""Parameter-space analysis (fastbias.analysis) on every construction of Vardi, Shamir and Srebro
(2022): GD (the compiled Network runner) from the stated initializations, then the verdict of
`optimality` / `layer_margin`. Closed forms and cvxpy solutions are the independent checks.

Constructions that the paper states without details in the main text (the appendix is not in
the spec) are built here and explained where they are used: Theorem 4.2(2) and 5.3 (a ReLU
network whose neurons are all nonzero but sit at a kink), Theorem 4.3 and 5.4 (two neurons
active on both inputs of Theorem 3.2's data: local, not global).
"""

import warnings

import cvxpy as cp
import numpy as np
import pytest

import fastbias as fb
from fastbias.analysis import global_optimum, kkt, layer_margin, optimality
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Tensor
from fastbias.models.network import Network

ONE = np.ones(1)
TWO = np.ones(2)
X32 = np.array([[1.0, 0.25], [-1.0, 0.25]])  # Theorem 3.2's data, y = (1, 1)


def gd(net, X, y, theta0, lr=0.05, steps=20000, rule=1):
    """Exp-loss GD with the compiled runner (rule 1: normalized steps, fast in direction)."""
    theta = np.array(theta0, dtype=np.float64)
    status, _ = net.runner_xy(X, y, 0)(
        theta, lr, rule, 0, steps, np.zeros(0, np.int64), np.zeros((0, theta.size)), -1e300
    )
    assert status == 0
    return theta


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def check_witnesses(net, X, y, res):
    """Every witness is feasible (true forward pass), closer than its radius, and smaller."""
    radii = [w.radius for w in res.witnesses]
    assert len(radii) == 4 and radii == sorted(radii, reverse=True)
    assert radii[-1] == pytest.approx(1e-4 * res.norm)
    for w in res.witnesses:
        assert (y * net.forward(w.theta, X)).min() >= 1.0
        assert np.linalg.norm(w.theta - res.theta) <= w.radius
        assert np.linalg.norm(w.theta) < res.norm


def svm_cvxpy(F, y):
    w = cp.Variable(F.shape[1])
    cp.Problem(cp.Minimize(cp.sum_squares(w)), [cp.multiply(y, F @ w) >= 1]).solve()
    return w.value


# ---- kkt ---------------------------------------------------------------------------------------
def test_kkt_linear_model_is_the_svm_dual():
    """Depth 1: Problem 2 is the SVM; the multipliers are its dual (cvxpy's)."""
    X, y = fb.datasets.separable_gaussian(15, 3, margin=0.3, seed=2)
    w = cp.Variable(3)
    cons = [cp.multiply(y, X @ w) >= 1]
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), cons).solve()
    res = kkt(Linear(), 3.7 * w.value, X, y, active_tol=1e-4)
    assert res.residual < 1e-7 and res.margins.min() == pytest.approx(1.0)
    np.testing.assert_allclose(res.theta, w.value, rtol=1e-6)
    np.testing.assert_allclose(res.multipliers, cons[0].dual_value, atol=1e-6)
    assert res.scale == pytest.approx(1 / 3.7)


@pytest.mark.parametrize(
    "model",
    [FullyConnected([3]), FullyConnected([2, 3]), Diagonal(2), Network.diagonal(3, 2, "linear")],
    ids=repr,
)
def test_kkt_at_global_optima(model):
    """The certificates' optima are KKT points; stationarity rechecked with model.vjp."""
    X, y = fb.datasets.separable_gaussian(12, 3, margin=0.3, seed=4)
    cert = global_optimum(model, X, y)
    res = kkt(model, cert.theta, X, y, active_tol=1e-6)
    assert res.residual < 1e-7 and res.complementarity < 1e-7
    params = model.unflatten(res.theta, 3)
    rebuilt = sum(
        lam * model.flatten(model.vjp(params, yi * xi))
        for lam, xi, yi in zip(res.multipliers, X, y, strict=True)
    )
    np.testing.assert_allclose(rebuilt, res.theta, atol=1e-6 * np.linalg.norm(res.theta))


@pytest.mark.parametrize(
    "model",
    [
        Linear(),
        FullyConnected([3]),
        Diagonal(2),
        Diagonal(3),
        Convolutional(2),
        Tensor.diagonal(4, 2),
    ],
    ids=repr,
)
def test_kkt_residual_of_gd_vanishes(model):
    """Gunasekar et al. Theorem 4: the GD direction approaches a KKT point of eq. 14."""
    X, y = fb.datasets.separable_gaussian(10, 4, margin=0.2, seed=5)
    res = []
    for steps in (300, 30000):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Yun's sufficient initial condition
            run = fb.train(
                X, y, model=model, steps=steps, step_rule="normalized", lr=0.05,
                reference=None, seed=1,
            )  # fmt: skip
        res.append(kkt(model, run.params, X, y))
    assert res[1].residual < res[0].residual
    assert res[1].residual < 1e-2 and res[1].complementarity < 1e-3


def test_kkt_clarke_subgradient_at_a_kink():
    """w1 = (1, 0), w2 = (0, 1), v = (1, 1), x1 = (1, -1/2), x2 = (0, 1): neuron 1 has zero
    input on x2. Stationarity for w1 reads w1 = v1 (lam1 x1 + lam2 s x2), which holds with
    lam = (1, 1) only for sigma'(0) = s = 1/2 (worked out by hand)."""
    net = Network.fully_connected(2, [2], "relu")
    X = np.array([[1.0, -0.5], [0.0, 1.0]])
    theta = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    res = kkt(net, theta, X, TWO)
    assert res.residual < 1e-12
    np.testing.assert_allclose(res.multipliers, [1.0, 1.0], atol=1e-12)
    (kink,) = res.kinks
    assert (kink.sample, kink.layer, kink.neuron) == (1, 1, 0)
    assert kink.slope == pytest.approx(0.5)
    # with sigma'(0) fixed to 0 (the network's own gradient) the same NNLS cannot fit theta
    from scipy.optimize import nnls

    _, resid = nnls(net.gradient(theta, X).T, theta)
    assert resid / np.linalg.norm(theta) > 0.1


def test_kkt_bad_input():
    net = Network.fully_connected(2, [2], "relu")
    with pytest.raises(ValueError, match="does not classify"):
        kkt(net, [-1, 0, -1, 0, 1, 1.0], X32, TWO)
    with pytest.raises(ValueError, match="zero"):
        kkt(net, np.zeros(6), X32, TWO)
    with pytest.raises(ValueError, match="6"):
        kkt(net, np.ones(5), X32, TWO)
    with pytest.raises(ValueError, match="NaN or inf"):
        kkt(net, np.ones(6), np.array([[1.0, np.inf], [0.0, 1.0]]), TWO)
    with pytest.raises(ValueError, match="Model"):
        kkt("relu", np.ones(6), X32, TWO)


# ---- Theorem 3.1: fully connected linear networks, global -------------------------------------
@pytest.mark.parametrize("widths", [[4], [3, 2]])
def test_theorem_3_1_fully_connected_linear_is_global(widths):
    X, y = fb.datasets.separable_gaussian(12, 3, margin=0.2, seed=3)
    net = Network.fully_connected(3, widths, "linear")
    theta0 = np.random.default_rng(0).standard_normal(net.n_total) * 0.5
    res = optimality(net, gd(net, X, y, theta0, steps=30000), X, y)
    assert res.verdict == "global" and res.polished and res.polish_distance < 0.05
    # min ||theta||^2 = L ||w_hat||^(2/L), w_hat the L2 SVM (cvxpy)
    L = len(widths) + 1
    w_hat = svm_cvxpy(X, y)
    assert res.certificate.value == pytest.approx(L * np.linalg.norm(w_hat) ** (2 / L), rel=1e-6)
    assert res.norm**2 == pytest.approx(res.certificate.value, rel=1e-7)
    opt = res.certificate.theta
    assert (y * net.forward(opt, X)).min() == pytest.approx(1.0, abs=1e-9)


def test_theorem_3_1_with_the_fully_connected_model():
    X, y = fb.datasets.separable_gaussian(12, 3, margin=0.2, seed=3)
    model = FullyConnected([3, 3])
    run = fb.train(X, y, model=model, steps=30000, step_rule="normalized", lr=0.05, reference=None)
    res = optimality(model, run.params, X, y)
    assert res.verdict == "global"


# ---- Theorem 3.2 and Remark 3.1: two ReLU neurons, not local ------------------------------------
def test_theorem_3_2_not_local():
    net = Network.fully_connected(2, [2], "relu")
    theta0 = np.array([0.1, 0.9, 0.1, -0.9, 0.8, 0.5])  # [w1, w2, v]
    pre = net.preactivations(theta0, X32)[0]
    assert np.all(pre[:, 0] > 0) and np.all(pre[:, 1] < 0) and theta0[4] > 0  # the condition
    theta = gd(net, X32, TWO, theta0)
    limit = unit([0, 2, 0, 0, 2, 0])  # w1 = (0, 2), v1 = 2, w2 = 0, v2 = 0
    assert np.linalg.norm(unit(theta) - limit) < 2e-2
    res = optimality(net, theta, X32, TWO)
    assert res.verdict == "not local"
    np.testing.assert_allclose(res.theta, [0, 2, 0, 0, 2, 0], atol=1e-9)
    check_witnesses(net, X32, TWO, res)
    # the witness uses neuron 2 active on one input: curvature 1 - lam ||x_2|| with lam = 2
    assert min(p.min_curvature for p in res.pieces) == pytest.approx(
        1 - 2 * np.linalg.norm(X32[1]), rel=1e-6
    )


def test_theorem_3_2_random_initializations():
    net = Network.fully_connected(2, [2], "relu")
    rng = np.random.default_rng(2022)
    found = 0
    while found < 3:
        theta0 = rng.standard_normal(6) / np.sqrt(2)
        pre = net.preactivations(theta0, X32)[0]
        if not (np.all(pre[:, 0] > 0) and np.all(pre[:, 1] < 0) and theta0[4] > 0):
            continue
        found += 1
        theta = gd(net, X32, TWO, theta0)
        res = optimality(net, theta, X32, TWO)
        assert res.verdict == "not local"
        np.testing.assert_allclose(res.theta, [0, 2, 0, 0, 2, 0], atol=1e-9)


def test_remark_3_1_suboptimality_grows():
    """x = (+-1, delta): the KKT point has ||theta||^2 = 2/delta, the optimum (one neuron per
    input, u_j = x_j / ||x_j||^2) 4/sqrt(1 + delta^2): ratio^2 = sqrt(1 + delta^2)/(2 delta)."""
    net = Network.fully_connected(2, [2], "relu")
    ratios = []
    for delta in (1 / 4, 1 / 16, 1 / 64):
        X = np.array([[1.0, delta], [-1.0, delta]])
        theta0 = np.array([0.2 * delta, 0.9, 0.1 * delta, -0.9, 0.8, 0.5])
        res = optimality(net, gd(net, X, TWO, theta0, lr=0.01), X, TWO)
        assert res.verdict == "not local"
        assert res.certificate.value == pytest.approx(4 / np.sqrt(1 + delta**2), rel=1e-8)
        assert res.norm**2 == pytest.approx(2 / delta, rel=1e-9)
        ratio = np.sqrt(np.sqrt(1 + delta**2) / (2 * delta))
        assert res.suboptimality == pytest.approx(ratio, rel=1e-8)
        ratios.append(res.suboptimality)
    assert ratios[0] < ratios[1] < ratios[2] and ratios[2] > 5


# ---- Section 4: depth-2 networks in N -------------------------------------------------------
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_theorem_4_1_diagonal_not_local(activation):
    net = Network.diagonal(2, 2, activation)
    X = np.array([[1.0, 2.0]])
    res = optimality(net, gd(net, X, ONE, [1.0, 0.0, 1.0, 0.0], steps=2000), X, ONE)
    assert res.verdict == "not local"
    np.testing.assert_allclose(res.theta, [1, 0, 1, 0], atol=1e-12)
    check_witnesses(net, X, ONE, res)
    # the paper's witness w1' = w2' = (sqrt(1 - eps), sqrt(eps / 2))
    for eps in (1e-2, 1e-4):
        a = np.array([np.sqrt(1 - eps), np.sqrt(eps / 2)])
        w = np.r_[a, a]
        assert net.forward(w, X)[0] >= 1 - 1e-15 and w @ w < 2
    if activation == "linear":  # global optimum 2 min |u|_1 s.t. u1 + 2 u2 >= 1 = 1
        assert res.certificate.value == pytest.approx(1.0, rel=1e-9)


def _l1_svm_cvxpy(X, y):
    b = cp.Variable(X.shape[1])
    return cp.Problem(cp.Minimize(cp.norm1(b)), [cp.multiply(y, X @ b) >= 1]).solve()


def _group_socp_cvxpy(X, y, supports):
    us = [cp.Variable(len(s)) for s in supports]
    out = sum(X[:, s] @ u for s, u in zip(supports, us, strict=True))
    obj = cp.Minimize(sum(cp.norm(u, 2) for u in us))
    return cp.Problem(obj, [cp.multiply(y, out) >= 1]).solve()


@pytest.mark.parametrize(
    "supports, seed", [(None, 3), ([[0, 1], [1, 2], [0, 2]], 5)], ids=["diagonal", "local"]
)
def test_theorem_4_2_linear_no_share_is_global(supports, seed):
    # data sets whose optimum uses every hidden neuron (the theorem's assumption)
    X, y = fb.datasets.separable_gaussian(12, 3, margin=0.2, seed=seed)
    if supports is None:
        net = Network.diagonal(3, 2, "linear")
        cvx = 2 * _l1_svm_cvxpy(X, y)
    else:
        net = Network.locally_connected(3, supports, "linear")
        cvx = 2 * _group_socp_cvxpy(X, y, supports)
    theta0 = np.random.default_rng(1).standard_normal(net.n_total) * 0.5
    theta = gd(net, X, y, theta0, lr=3e-3, steps=30000, rule=2)  # loss-scaled steps
    res = optimality(net, theta, X, y)
    assert res.verdict == "global" and res.polish_distance < 0.01
    assert min(net.neuron_norms(res.theta)[0]) > 0.1  # the theorem's assumption holds
    assert res.certificate.value == pytest.approx(cvx, rel=1e-6)


def test_theorem_4_2_relu_nonzero_neurons_not_local():
    """Fully connected, d = 2, four neurons, x1 = e1, x2 = e2. Neurons 1, 3 start active on
    x1 only and 2, 4 on x2 only; GD moves w1, w3 along x1, so their x2-components stay
    constant and vanish in direction: the limit has w1 . x2 = 0 (a kink) with every neuron
    nonzero. Tilting w1 towards x2 raises Phi(x2) at first order: not a local optimum."""
    net = Network.fully_connected(2, [4], "relu")
    X = np.eye(2)
    W = np.array([[1, -0.1], [-0.1, 1], [0.5, -0.2], [-0.2, 0.6]])
    theta = gd(net, X, TWO, np.r_[W.ravel(), 1.0, 1.0, 0.5, 0.6])
    res = optimality(net, theta, X, TWO)
    assert res.verdict == "not local"
    assert min(net.neuron_norms(res.theta)[0]) > 0.1
    assert len(res.kinks) == 4 and max(p.first_order for p in res.pieces) > 0.1
    check_witnesses(net, X, TWO, res)
    assert res.certificate.value == pytest.approx(2 * np.sqrt(2), rel=1e-8)  # one neuron, u=(1,1)


def test_theorem_4_3_local_not_global():
    """Theorem 3.2's data with both neurons active on both inputs: GD keeps them so, the limit
    has nonzero inputs to every neuron, hence is local (Theorem 4.3); it costs 2/delta = 8
    against 4/sqrt(1 + delta^2) for one neuron per input: not global."""
    net = Network.fully_connected(2, [2], "relu")
    theta0 = np.array([0.1, 0.9, -0.05, 0.6, 0.8, 0.5])
    assert np.all(net.preactivations(theta0, X32)[0] > 0)
    res = optimality(net, gd(net, X32, TWO, theta0), X32, TWO)
    assert res.verdict == "local"
    assert np.all(np.abs(net.preactivations(res.theta, X32)[0]) > 0.1)
    assert res.norm**2 == pytest.approx(8.0, rel=1e-10)
    assert res.certificate.value == pytest.approx(4 / np.sqrt(1 + 1 / 16), rel=1e-8)
    opt = res.certificate.theta
    assert (net.forward(opt, X32)).min() >= 1 - 1e-8
    assert opt @ opt == pytest.approx(res.certificate.value, rel=1e-8)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_theorem_4_4_convolution_not_local(activation):
    net = Network.conv_disjoint_patches(4, 2, activation)
    s = 1 / np.sqrt(2)
    X = np.array([[4.0, s, -4.0, s]])
    theta = gd(net, X, ONE, [0.0, 1.0, s, s], lr=0.01, steps=2000)
    res = optimality(net, theta, X, ONE)
    assert res.verdict == "not local"
    np.testing.assert_allclose(res.theta, [0, 1, s, s], atol=1e-12)
    assert np.all(net.preactivations(res.theta, X)[0] != 0)
    check_witnesses(net, X, ONE, res)
    for eps in (1e-2, 1e-4):  # the paper's witness
        w = np.array([np.sqrt(eps), 1 - eps, s + np.sqrt(eps) / 2, s - np.sqrt(eps) / 2])
        assert net.forward(w, X)[0] >= 1 and w @ w < 2


@pytest.mark.parametrize("depth", [3, 4])
@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_theorem_5_1_deep_diagonal_not_local(depth, activation):
    net = Network.diagonal(2, depth, activation)
    X = np.array([[1.0, 1.0]])
    res = optimality(net, gd(net, X, ONE, np.ones(2 * depth), lr=0.01, steps=2000), X, ONE)
    assert res.verdict == "not local"
    np.testing.assert_allclose(res.theta, 2 ** (-1 / depth), rtol=1e-12)
    check_witnesses(net, X, ONE, res)
    for eps in (1e-2, 1e-3):  # the paper's witness
        w = np.tile([((1 + eps) / 2) ** (1 / depth), ((1 - eps) / 2) ** (1 / depth)], depth)
        assert net.forward(w, X)[0] >= 1 - 1e-15 and w @ w < res.norm**2


# ---- Section 5: the per-layer problem -------------------------------------------------------
def _per_layer_cvxpy(net, theta, X, y, layer):
    """eq. 4 for a linear network: Phi is linear in u^(l) with coefficients grad_u Phi."""
    sl = slice(net.offsets[layer - 1], net.offsets[layer])
    C = y[:, None] * net.gradient(theta, X)[:, sl]
    return np.linalg.norm(svm_cvxpy(C, np.ones(len(y))))


def test_theorem_5_2_linear_layers_are_global():
    s = 1 / np.sqrt(2)
    shared = Network(
        [(2, [[0, 1, -1, -1], [-1, -1, 0, 1], [1, 0, -1, -1]]), (3, [[0, 1, 2]])], "linear"
    )
    Xs, ys = fb.datasets.separable_gaussian(8, 4, margin=0.3, seed=8)
    cases = [
        (Network.conv_disjoint_patches(4, 2, "linear"), np.array([[4.0, s, -4.0, s]]), ONE,
         [0.0, 1.0, s, s], 2000),
        (Network.diagonal(2, 3, "linear"), np.array([[1.0, 1.0]]), ONE, np.ones(6), 2000),
        (shared, Xs, ys, np.random.default_rng(3).standard_normal(5), 30000),
    ]  # fmt: skip
    for net, X, y, theta0, steps in cases:
        theta = gd(net, X, y, theta0, lr=0.01, steps=steps)
        for layer in range(1, net.depth + 1):
            res = layer_margin(net, theta, X, y, layer)
            assert res.verdict == "global", (net, layer, res.message)
            want = _per_layer_cvxpy(net, res.theta, X, y, layer)
            assert res.optimum_norm == pytest.approx(want, rel=1e-6)
            assert res.norm == pytest.approx(want, rel=1e-6)


def test_theorem_5_3_first_layer_not_local():
    """The network of the Theorem 4.2(2) test: w1 . x2 = 0 with v1 > 0, so with v fixed,
    tilting w1 towards x2 lets w2 shrink at first order."""
    net = Network.fully_connected(2, [4], "relu")
    X = np.eye(2)
    W = np.array([[1, -0.1], [-0.1, 1], [0.5, -0.2], [-0.2, 0.6]])
    theta = gd(net, X, TWO, np.r_[W.ravel(), 1.0, 1.0, 0.5, 0.6])
    res = layer_margin(net, theta, X, TWO, 1)
    assert res.verdict == "not local" and len(res.witnesses) == 4
    for w in res.witnesses:
        assert net.forward(w.theta, X).min() >= 1.0
        np.testing.assert_array_equal(w.theta[8:], res.theta[8:])  # only layer 1 changed
        assert np.linalg.norm(w.theta[:8]) < res.norm
        assert np.linalg.norm(w.theta[:8] - res.params) <= w.radius
    assert layer_margin(net, theta, X, TWO, 2).verdict == "global"


def test_theorem_5_4_relu_layers_local():
    # Theorem 5.1's depth-3 ReLU diagonal network: no zero inputs, so every layer is a local
    # optimum of eq. 4 although theta is not a local optimum of Problem 2
    net = Network.diagonal(2, 3, "relu")
    X = np.array([[1.0, 1.0]])
    theta = gd(net, X, ONE, np.ones(6), lr=0.01, steps=2000)
    assert [layer_margin(net, theta, X, ONE, k).verdict for k in (1, 2, 3)] == [
        "local", "local", "global",
    ]  # fmt: skip
    # not global: Theorem 4.3's two neurons; with v fixed, one neuron per input is cheaper
    net = Network.fully_connected(2, [2], "relu")
    theta = gd(net, X32, TWO, [0.1, 0.9, -0.05, 0.6, 0.8, 0.5])
    res = layer_margin(net, theta, X32, TWO, 1)
    assert res.verdict == "local" and res.optimum_norm < res.norm
    better = res.theta.copy()
    better[:4] = res.optimum
    assert net.forward(better, X32).min() >= 1 - 1e-8
    assert np.all(np.abs(net.preactivations(res.theta, X32)[0]) > 0.1)


# ---- global optima and bad input -----------------------------------------------------------
def test_global_optimum_against_cvxpy():
    X, y = fb.datasets.separable_gaussian(10, 3, margin=0.2, seed=6)
    w_hat = svm_cvxpy(X, y)
    fc = global_optimum(FullyConnected([2, 2]), X, y)
    assert fc.value == pytest.approx(3 * np.linalg.norm(w_hat) ** (2 / 3), rel=1e-6)
    assert global_optimum(Linear(), X, y).value == pytest.approx(w_hat @ w_hat, rel=1e-6)
    assert global_optimum(Diagonal(2), X, y).value == pytest.approx(
        2 * _l1_svm_cvxpy(X, y), rel=1e-6
    )
    for model, theta in ((FullyConnected([2, 2]), fc.theta),):
        m = y * (X @ model.predictor(model.unflatten(theta, 3)))
        assert m.min() == pytest.approx(1.0, abs=1e-9)
    assert global_optimum(Convolutional(2), X, y) is None
    assert global_optimum(Diagonal(3), X, y) is None


def test_analysis_bad_input():
    net = Network.fully_connected(2, [2], "relu")
    theta = np.array([0.0, 2.0, 0.0, 0.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="layer must be an integer in"):
        layer_margin(net, theta, X32, TWO, 3)
    with pytest.raises(ValueError, match="radii"):
        optimality(net, theta, X32, TWO, radii=[0.1, -1.0])
    with pytest.raises(ValueError, match="does not classify"):
        optimality(net, -theta, X32, TWO)
    with pytest.raises(ValueError, match="NaN or inf"):
        optimality(net, theta, np.array([[1.0, np.nan], [0.0, 1.0]]), TWO)
    with pytest.raises(ValueError, match="input dimension"):
        optimality(net, theta, np.ones((2, 3)), TWO)


def test_not_a_kkt_point_warns():
    """A direction far from any KKT point: the verdict is about theta itself, with a warning."""
    net = Network.fully_connected(2, [2], "linear")
    theta = np.array([0.1, 1.0, 0.3, 1.0, 1.0, 0.5])  # beta = (0.25, 1.5)
    with pytest.warns(UserWarning, match="not a KKT point"):
        res = optimality(net, theta, X32, TWO, polish=False)
    assert res.verdict == "not local"
    check_witnesses(net, X32, TWO, res)
