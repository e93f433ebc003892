"""Linear circular convolutional networks: the time-domain references (predictor, VJP), Lemma 3,
the Fourier-domain compiled kernel against ``_reference.gd_model``, and the implicit bias of
Gunasekar et al. (2018) Theorem 2 and Yun et al. (2021) Section 6."""

import warnings

import numpy as np
import pytest

import fastbias as fb
from fastbias.kernels import _reference
from fastbias.kernels._fft import real_fourier_rows, rfft_rows
from fastbias.models.convolutional import Convolutional
from fastbias.references import max_margin

RTOL = 1e-10  # compiled Fourier-domain kernel vs the time-domain NumPy reference

ARCHS = [
    (1, None),
    (2, None),
    (3, None),
    (2, (3,)),
    (2, (1,)),
    (3, (2, "d")),
]


def _cases(dims):
    """``(depth, sizes, d)`` for every architecture whose kernel sizes fit in ``d``."""
    return [
        (depth, sizes, d)
        for d in dims
        for depth, sizes in ARCHS
        if sizes is None or all(k == "d" or k <= d for k in sizes)
    ]


def _arch(depth, sizes, d):
    if sizes is None:
        return Convolutional(depth)
    return Convolutional(depth, [d if k == "d" else k for k in sizes])


def network_output(params, x):
    """``f(x)`` straight from Gunasekar eq. 3 / Yun eq. 12, with explicit loops:
    ``h_l[i] = sum_{p<k_l} w_l[p] h_{l-1}[(i + p) mod d]``, ``f(x) = h_{L-1} . w_L``."""
    d = x.shape[0]
    h = np.array(x, dtype=np.float64)
    for w in params[:-1]:
        out = np.zeros(d)
        for i in range(d):
            for p in range(len(w)):
                out[i] += w[p] * h[(i + p) % d]
        h = out
    return float(h @ params[-1])


def unitary_dft(d):
    k = np.arange(d)
    return np.exp(-2j * np.pi * np.outer(k, k) / d) / np.sqrt(d)


# ---- time-domain references ----------------------------------------------------------------


@pytest.mark.parametrize("depth, sizes, d", _cases([1, 2, 5, 6]))
def test_predictor_is_the_network_output(depth, sizes, d):
    model = _arch(depth, sizes, d)
    rng = np.random.default_rng(d * 10 + depth)
    params = model.init_params(d, "gaussian", 1.0, seed=d + depth)
    beta = model.predictor(params)
    assert beta.shape == (d,)
    for _ in range(5):
        x = rng.standard_normal(d)
        assert beta @ x == pytest.approx(network_output(params, x), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("depth, sizes, d", _cases([1, 2, 5, 6, 9, 16]))
def test_lemma3_fourier_predictor(depth, sizes, d):
    """Gunasekar et al. Lemma 3: ``beta_hat = prod_l DFT(w_l)`` (zero-padded filters)."""
    model = _arch(depth, sizes, d)
    params = model.init_params(d, "gaussian", 1.0, seed=3)
    beta = model.predictor(params)
    beta_hat = model.fourier_predictor(params)
    assert beta_hat.shape == (d,)
    np.testing.assert_allclose(np.fft.irfft(beta_hat, d), beta, rtol=0, atol=1e-13)
    np.testing.assert_allclose(beta_hat, np.fft.fft(beta), rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [4, 5])
@pytest.mark.parametrize("depth, sizes", ARCHS)
def test_vjp_matches_finite_differences(depth, sizes, d):
    model = _arch(depth, sizes, d)
    rng = np.random.default_rng(7)
    theta = model.flatten(model.init_params(d, "gaussian", 1.0, seed=5))
    G = rng.standard_normal(d)

    def f(t):
        return G @ model.predictor(model.unflatten(t, d))

    got = model.flatten(model.vjp(model.unflatten(theta, d), G))
    eps = 1e-4
    fd = np.array(
        [(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps) for e in np.eye(theta.size)]
    )
    # <G, P(theta)> is multilinear in the layers: central differences are exact up to round-off
    np.testing.assert_allclose(got, fd, rtol=0, atol=1e-9)


def test_fft_helpers():
    rng = np.random.default_rng(0)
    for shape in [(3, 1), (4, 2), (5, 7), (6, 8), (1, 64)]:
        A = rng.standard_normal(shape)
        np.testing.assert_allclose(rfft_rows(A), np.fft.rfft(A), rtol=0, atol=1e-12)
        # the plan is cached: a second call on new data of the same shape is still right
        B = rng.standard_normal(shape)
        np.testing.assert_allclose(rfft_rows(B), np.fft.rfft(B), rtol=0, atol=1e-12)
        N, d = shape
        H = d // 2 + 1
        ZF = real_fourier_rows(A)
        assert ZF.shape == (d, N) and ZF.flags.c_contiguous
        beta = rng.standard_normal(d)
        bh = np.fft.rfft(beta)
        c = np.where((np.arange(H) == 0) | (2 * np.arange(H) == d), 1.0, 2.0) / d
        b = np.concatenate([c * bh.real, (c * bh.imag)[1 : d - H + 1]])
        np.testing.assert_allclose(ZF.T @ b, A @ beta, rtol=0, atol=1e-12)  # Parseval


def test_rfft_rows_numpy_fallback(monkeypatch):
    from fastbias.kernels import _fft

    A = np.random.default_rng(1).standard_normal((3, 10))
    with_plans = _fft.rfft_rows(A)
    monkeypatch.setattr(_fft, "pyfftw", None)
    assert not _fft.have_pyfftw()
    np.testing.assert_allclose(_fft.rfft_rows(A), with_plans, rtol=0, atol=1e-12)


# ---- compiled kernel against the reference -------------------------------------------------


def _reference_run(model, d, Z, targets, theta, lr, loss, rule, n, rec):
    rec_theta = np.zeros((len(rec), theta.size))
    status = _reference.gd_model(
        lambda t: model.predictor(model.unflatten(t, d)),
        lambda t, G: model.flatten(model.vjp(model.unflatten(t, d), G)),
        Z, targets, theta, lr, loss, rule, 0, n, rec, rec_theta, -1e10,
    )  # fmt: skip
    return status, rec_theta


def _problem(model, d, loss, rule, seed):
    X, y = fb.datasets.separable_gaussian(8, d, margin=0.1, seed=seed)
    targets = np.random.default_rng(seed).standard_normal(8)
    Z = X if loss == 2 else X * y[:, None]
    s2 = np.linalg.norm(Z, 2) ** 2
    # small enough for 1000 steps of smooth (non-chaotic) dynamics, so round-off stays small
    if loss == 2:
        lr = {0: 0.02 / s2, 1: 1e-4, 2: 0.005 / s2}[rule]
    else:
        lr = {0: 0.1 / s2, 1: 2e-3, 2: 0.02 / s2}[rule]
    theta = model.flatten(model.init_params(d, "gaussian", 0.7, seed=3))
    return Z, (targets if loss == 2 else np.zeros(8)), theta, lr


@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("loss", [0, 1, 2])
@pytest.mark.parametrize("d", [5, 6])
@pytest.mark.parametrize("depth, sizes", ARCHS)
def test_kernel_matches_reference(depth, sizes, d, loss, rule):
    model = _arch(depth, sizes, d)
    Z, targets, theta0, lr = _problem(model, d, loss, rule, seed=d * 10 + depth)
    rec = np.array([1, 2, 3, 10, 99, 500, 1000], dtype=np.int64)
    theta_ref = theta0.copy()
    status_ref, rec_ref = _reference_run(model, d, Z, targets, theta_ref, lr, loss, rule, 1000, rec)

    run = model.runner(Z, targets, loss, "float64")
    theta = theta0.copy()
    rec_theta = np.zeros((len(rec), theta.size))
    status = run(theta, lr, rule, 0, 1000, rec, rec_theta, -1e10)

    assert status_ref == status == (0, 1000)
    scale = np.abs(rec_ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(rec_theta - rec_ref) <= RTOL * scale)
    assert np.all(np.abs(theta - theta_ref) <= RTOL * np.abs(theta_ref).max())
    assert np.array_equal(rec_theta[-1], theta)


@pytest.mark.parametrize("d", [32, 33])
@pytest.mark.parametrize("depth, sizes", [(3, None), (3, (5, "d"))])
def test_kernel_matches_reference_larger_d(depth, sizes, d):
    model = _arch(depth, sizes, d)
    X, y = fb.datasets.separable_gaussian(12, d, margin=0.1, seed=d)
    Z = X * y[:, None]
    theta0 = model.flatten(model.init_params(d, "gaussian", 0.7, seed=1))
    lr = 0.1 / np.linalg.norm(Z, 2) ** 2
    rec = np.array([1, 17, 200], dtype=np.int64)
    status_ref, rec_ref = _reference_run(
        model, d, Z, np.zeros(12), theta0.copy(), lr, 1, 0, 200, rec
    )
    theta = theta0.copy()
    rec_theta = np.zeros((3, theta.size))
    status = model.runner(Z, np.zeros(12), 1, "float64")(
        theta, lr, 0, 0, 200, rec, rec_theta, -1e10
    )
    assert status == status_ref == (0, 200)
    scale = np.abs(rec_ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(rec_theta - rec_ref) <= RTOL * scale)


@pytest.mark.parametrize("depth, sizes", [(2, None), (3, None), (3, (2, "d")), (2, (3,))])
def test_chunked_calls_equal_one_call(depth, sizes):
    d = 6
    model = _arch(depth, sizes, d)
    Z, targets, theta0, lr = _problem(model, d, 0, 0, seed=11)
    rec = np.array([5, 50, 400, 1000], dtype=np.int64)

    theta1 = theta0.copy()
    r1 = np.zeros((4, theta0.size))
    model.runner(Z, targets, 0, "float64")(theta1, lr, 0, 0, 1000, rec, r1, -1e10)

    run = model.runner(Z, targets, 0, "float64")
    theta2 = theta0.copy()
    r2 = np.zeros((4, theta0.size))
    for start, stop, lo, hi in [(0, 50, 0, 2), (50, 51, 2, 2), (51, 700, 2, 3), (700, 1000, 3, 4)]:
        status = run(theta2, lr, 0, start, stop - start, rec[lo:hi], r2[lo:hi], -1e10)
        assert status == (0, stop)
    assert np.array_equal(theta1, theta2) and np.array_equal(r1, r2)


def test_runner_reads_theta_on_every_call():
    """A runner's kernel state is reused only while theta is what the last call wrote."""
    d = 5
    model = Convolutional(2)
    Z, targets, theta0, lr = _problem(model, d, 0, 0, seed=2)
    empty, rec0 = np.zeros(0, dtype=np.int64), np.zeros((0, theta0.size))
    run = model.runner(Z, targets, 0, "float64")
    theta = theta0.copy()
    run(theta, lr, 0, 0, 100, empty, rec0, -1e10)
    theta[:] = 0.5 * theta0  # the caller moves the parameters between calls
    run(theta, lr, 0, 100, 100, empty, rec0, -1e10)

    fresh = 0.5 * theta0
    model.runner(Z, targets, 0, "float64")(fresh, lr, 0, 100, 100, empty, rec0, -1e10)
    assert np.array_equal(theta, fresh)


def test_divergence_detected_at_same_step_as_reference():
    d = 5
    model = Convolutional(3)
    X, y = fb.datasets.separable_gaussian(8, d, margin=0.1, seed=1)
    Z = X * y[:, None]
    theta0 = model.flatten(model.init_params(d, "gaussian", 1.0, seed=3))
    rec = np.array([1000], dtype=np.int64)
    with np.errstate(all="ignore"):
        status_ref = _reference.gd_model(
            lambda t: model.predictor(model.unflatten(t, d)),
            lambda t, G: model.flatten(model.vjp(model.unflatten(t, d), G)),
            Z, np.zeros(8), theta0.copy(), 5.0, 0, 0, 0, 1000, rec,
            np.zeros((1, theta0.size)), -50.0,
        )  # fmt: skip
    theta = theta0.copy()
    status = model.runner(Z, np.zeros(8), 0, "float64")(
        theta, 5.0, 0, 0, 1000, rec, np.zeros((1, theta.size)), -50.0
    )
    assert status[0] == 1 and 0 < status[1] < 1000
    assert status == status_ref
    assert np.all(np.isfinite(theta))


# ---- implicit bias -------------------------------------------------------------------------


def _dft_l1_max_margin(X, y):
    """``argmin sum_j |(F beta)_j|  s.t.  y_n x_n . beta >= 1`` (Gunasekar eq. 9)."""
    cp = pytest.importorskip("cvxpy")
    N, d = X.shape
    k = np.arange(d)
    C = np.cos(2 * np.pi * np.outer(k, k) / d)
    S = np.sin(2 * np.pi * np.outer(k, k) / d)
    beta = cp.Variable(d)
    objective = cp.sum(cp.norm(cp.vstack([C @ beta, S @ beta]), 2, axis=0))
    problem = cp.Problem(cp.Minimize(objective), [cp.multiply(y, X @ beta) >= 1])
    problem.solve()
    assert problem.status == "optimal"
    return beta.value


def _angle(a, b):
    c = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.arccos(np.clip(c, -1.0, 1.0)))


def test_theorem2_dft_l1_max_margin_direction():
    """Gunasekar et al. Theorem 2: a 2-layer full-width convolutional network converges in
    direction to the DFT-domain l1 max-margin predictor (eq. 9), not to the l2 SVM."""
    X, y = fb.datasets.separable_gaussian(4, 6, margin=0.2, seed=1)
    beta_star = _dft_l1_max_margin(X, y)
    beta_l2 = max_margin(X, y).coef
    assert _angle(beta_star, beta_l2) > 0.5  # the two limits are far apart here

    run = fb.train(
        X, y, model=Convolutional(2), loss="exp", steps=3000, lr=0.01,
        step_rule="loss-scaled", init="yun", init_scale=0.5, record=3, reference=beta_star,
    )  # fmt: skip
    h = run.history
    gap = h["angle_gap"]  # 1 - cos(beta(t), beta_star) (Soudry eq. 3.2)
    np.testing.assert_allclose(
        gap, [1 - np.cos(_angle(b, beta_star)) for b in h.iterates], rtol=1e-6, atol=1e-12
    )
    assert h["min_margin"][-1] > 0  # zero training error
    assert gap[0] > 0.1
    assert gap[-1] < 1e-6  # angle < 1.5e-3 rad (cvxpy's accuracy limits how far this goes)
    big = gap[gap > 1e-4]
    assert len(big) >= 5 and np.all(np.diff(big) < 0)  # decreasing until it is small
    assert _angle(run.coef, beta_l2) > 0.4


def test_yun_section6_regression_dft_l1_limit():
    """Yun et al. Section 6: x = (1, 2), y = 1; a 2-layer convolutional network started small
    (init='yun', alpha -> 0) converges to the minimum DFT-domain l1 interpolant (1/3, 1/3)."""
    X = np.array([[1.0, 2.0]])
    y = np.array([1.0])
    run = fb.train(
        X, y, model=Convolutional(2), loss="squared", steps=20000, lr=1e-2,
        init="yun", init_scale=1e-3, record=2,
    )  # fmt: skip
    np.testing.assert_allclose(run.coef, [1 / 3, 1 / 3], atol=1e-3)
    assert run.history["loss"][-1] < 1e-20


# ---- convergence conditions ----------------------------------------------------------------


@pytest.mark.parametrize("d", [5, 6])
def test_corollary3_condition(d):
    model = Convolutional(3)
    params = model.init_params(d, "yun", 0.3, seed=4)
    cond = model.convergence_condition(params)
    F = unitary_dft(d)
    lam = min(np.min(np.abs(F @ w) ** 2 - np.abs(F @ params[-1]) ** 2) for w in params[:-1])
    assert cond.margin == pytest.approx(lam, rel=1e-12)
    assert cond.holds and "Corollary 3" in cond.theorem
    params[-1] = 10 * params[0]
    assert not model.convergence_condition(params).holds


def test_corollary4_conditions():
    rng = np.random.default_rng(0)
    d = 5
    x = rng.standard_normal(d)
    # k_1 = 1: lambda = v1^2 - (x.v2)^2 / ||x||^2
    model = Convolutional(2, [1])
    v1, v2 = np.array([0.8]), 0.3 * rng.standard_normal(d)
    cond = model.convergence_condition([v1, v2], x=x)
    assert cond.margin == pytest.approx(0.64 - (x @ v2) ** 2 / (x @ x))
    assert "Corollary 4" in cond.theorem
    worst = model.convergence_condition([v1, v2])
    assert worst.margin == pytest.approx(0.64 - v2 @ v2) and worst.margin <= cond.margin
    # k_1 = 2 (Yun's left shift x_l = roll(x, -1))
    model = Convolutional(2, [2])
    v1 = np.array([0.9, 0.2])
    xl = np.roll(x, -1)
    expected = min(
        (v1[0] + v1[1]) ** 2 - ((x + xl) @ v2) ** 2 / (x @ x + x @ xl),
        (v1[0] - v1[1]) ** 2 - ((x - xl) @ v2) ** 2 / (x @ x - x @ xl),
    )
    cond = model.convergence_condition([v1, v2], x=x)
    assert cond.margin == pytest.approx(expected)
    assert model.convergence_condition([v1, v2]).margin <= cond.margin
    assert model.convergence_condition(model.init_params(d, "yun", 1.0, seed=1)).holds
    # no known condition
    assert Convolutional(2, [3]).convergence_condition([np.ones(3), np.ones(d)]) is None
    assert Convolutional(3, [1, 1]).convergence_condition([[1.0], [1.0], np.ones(d)]) is None


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, -1, 1.5, True, "2", None])
def test_bad_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        Convolutional(depth)


def test_bad_kernel_sizes():
    with pytest.raises(ValueError, match="kernel size of layer 1"):
        Convolutional(2, [0])
    with pytest.raises(ValueError, match="kernel size of layer 2"):
        Convolutional(3, [2, 1.5])
    with pytest.raises(ValueError, match="1 for depth 2"):
        Convolutional(2, [2, 3])
    with pytest.raises(ValueError, match="0 for depth 1"):
        Convolutional(1, [2])
    with pytest.raises(ValueError, match="sequence"):
        Convolutional(2, 3)
    model = Convolutional(3, [2, 7])
    with pytest.raises(ValueError, match=r"kernel size 7 of layer 2 is not in \[1, d\].*d = 6"):
        model.shapes(6)
    assert model.shapes(7) == [(2,), (7,), (7,)]
    X, y = fb.datasets.separable_gaussian(5, 6, seed=0)
    with pytest.raises(ValueError, match="kernel size 7"):
        fb.train(X, y, model=model, steps=10)


def test_runner_rejects_other_precisions():
    X, y = fb.datasets.separable_gaussian(5, 4, seed=0)
    with pytest.raises(ValueError, match="float64, compensated and extended"):
        Convolutional(2).runner(X * y[:, None], np.zeros(5), 0, "quad")
    with pytest.raises(ValueError, match="exp and logistic"):
        Convolutional(2).runner(X, np.zeros(5), 2, "extended")


def test_repr_and_shapes():
    assert repr(Convolutional(2)) == "Convolutional(depth=2)"
    assert repr(Convolutional(3, (2, 4))) == "Convolutional(depth=3, kernel_sizes=[2, 4])"
    assert Convolutional(3).shapes(4) == [(4,), (4,), (4,)]
    assert Convolutional(1).shapes(3) == [(3,)]


def test_train_end_to_end_quiet():
    """fastbias.train accepts the model and records time-domain parameters."""
    X, y = fb.datasets.separable_gaussian(10, 6, margin=0.2, seed=4)
    model = Convolutional(3, [3, 6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = fb.train(X, y, model=model, steps=500, init="yun", init_scale=0.5, record=2)
    assert run.history.iterates.shape[1] == 6
    np.testing.assert_allclose(run.coef, model.predictor(run.params))
    assert run.history["min_margin"][-1] > 0


@pytest.mark.parametrize(("d", "k"), [(7, 3), (16, 16), (40, 5), (9, 1)])
def test_adjoint_layer_sums_the_taps_in_order_on_both_paths(monkeypatch, d, k):
    """``A^T v = sum_p w[p] roll(v, p)`` as one reduction (few products) and tap by tap (many)
    give the loop's sums bit for bit, so predictor and predictors do not depend on the size."""
    from fastbias.models import convolutional as cm

    rng = np.random.default_rng(d * k)
    w = rng.standard_normal((5, k)) * 10.0 ** rng.integers(-3, 4, size=(5, 1))
    v = rng.standard_normal((5, d))
    v[:, ::4] = 0.0
    want = np.zeros_like(v)
    for p in range(k):
        want += w[:, p, None] * np.roll(v, p, axis=1)
    np.testing.assert_array_equal(cm._adjoint_layer(w, v, d), want)
    monkeypatch.setattr(cm, "_SMALL", 0)
    np.testing.assert_array_equal(cm._adjoint_layer(w, v, d), want)


@pytest.mark.parametrize(
    ("depth", "sizes", "d"),
    [(2, None, 16), (3, [3, 2], 8), (2, [1], 9), (4, None, 7), (2, [5], 40)],
)
def test_compiled_predictors_are_the_numpy_ones_bit_for_bit(depth, sizes, d):
    """predictor / predictors (compiled, float64) against predictors_numpy (_adjoint_layer):
    the same bytes, signed zeros included."""
    model = Convolutional(depth, sizes)
    rng = np.random.default_rng(depth * d)
    P = sum(model.kernel_widths(d))
    thetas = rng.standard_normal((9, P)) * 10.0 ** rng.integers(-3, 4, size=(9, 1))
    thetas[:, ::3] = 0.0
    thetas[0] = -0.0
    want = model.predictors_numpy(thetas, d)
    assert model.predictors(thetas, d).tobytes() == want.tobytes()
    for row, w in zip(thetas, want, strict=True):
        assert model.predictor(model.unflatten(row, d)).tobytes() == w.tobytes()
    ld = thetas.astype(np.longdouble)  # long double rows: the NumPy path
    assert model.predictors(ld, d).dtype == np.longdouble


def test_corollary3_condition_is_kept_by_the_layers_content():
    """The full-width condition is computed once per initialization (keyed by the layers'
    bytes): the same layers give the kept result, layers changed in place a new one."""
    model = Convolutional(2)
    params = model.init_params(8, "gaussian", 1.0, 3)
    first = model.convergence_condition(params)
    assert model.convergence_condition([p.copy() for p in params]) is first
    F = np.abs(np.fft.fft(np.asarray(params), axis=1) / np.sqrt(8)) ** 2
    assert first.margin == float(np.min(F[:-1] - F[-1]))
    changed = [p.copy() for p in params]
    changed[1] *= 3.0  # a larger output layer: lambda falls
    other = model.convergence_condition(changed)
    assert other is not first and other.margin < first.margin
