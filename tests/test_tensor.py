"""Linear tensor networks (Yun et al. 2021, eq. 6): references, compiled kernel, builders."""

import string
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_separable

import fastbias as fb
from fastbias.kernels import _reference
from fastbias.kernels._numba_tensor import contract, gd_tensor, tensor_predictor
from fastbias.models import Diagonal, FullyConnected
from fastbias.models.tensor import Tensor

RUN_RTOL = 1e-10  # compiled kernel vs NumPy reference after 1000 steps


def random_M(rng, d, ks, density=0.5):
    M = rng.standard_normal((d, *ks))
    M[rng.random(M.shape) > density] = 0.0
    M[0, (0,) * len(ks)] = 1.0  # never all zero
    return M


def random_layers(rng, ks, scale=1.0):
    return [scale * rng.standard_normal(k) / np.sqrt(k) for k in ks]


def einsum_beta(M, vs):
    """``beta_j = M_j o (v_1, ..., v_L)`` by a dense einsum (Yun eq. 6, Section 2)."""
    letters = string.ascii_lowercase[1 : 1 + len(vs)]
    spec = "a" + letters + "," + ",".join(letters) + "->a"
    return np.einsum(spec, M, *vs)


def einsum_f(M, x, vs):
    """``f(x) = M(x) o (v_1, ..., v_L)`` with ``M(x) = sum_j x_j M_j``."""
    Mx = np.tensordot(x, M, axes=(0, 0))
    letters = string.ascii_lowercase[: len(vs)]
    return np.einsum(letters + "," + ",".join(letters) + "->", Mx, *vs)


def assert_runs_close(a, b, rtol=RUN_RTOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    scale = np.max(np.abs(b), axis=-1, keepdims=True)
    assert np.all(np.abs(a - b) <= rtol * np.maximum(np.abs(b), 1e-2 * scale))


# ---- (1) predictor ------------------------------------------------------------------------


@pytest.mark.parametrize("ks", [(4,), (3, 5), (2, 3, 4), (3, 2, 2, 3)])
def test_predictor_matches_einsum(ks):
    rng = np.random.default_rng(len(ks))
    d = 5
    M = random_M(rng, d, ks)
    model = Tensor(M)
    assert model.depth == len(ks) and model.shapes(d) == [(k,) for k in ks]
    vs = random_layers(rng, ks)
    beta = model.predictor(vs)
    np.testing.assert_allclose(beta, einsum_beta(M, vs), rtol=1e-13, atol=1e-14)
    x = rng.standard_normal(d)
    np.testing.assert_allclose(x @ beta, einsum_f(M, x, vs), rtol=1e-12)
    np.testing.assert_allclose(model.data_tensor(x), np.tensordot(x, M, axes=(0, 0)), atol=1e-14)
    np.testing.assert_array_equal(model.to_dense(), M)
    # compiled predictor
    out = np.empty(d)
    tensor_predictor(
        model.j_idx, model.multi_idx, model.values, model.offsets, model.flatten(vs), out
    )
    np.testing.assert_allclose(out, beta, rtol=1e-13, atol=1e-14)
    # L-homogeneity
    np.testing.assert_allclose(model.predictor([2 * v for v in vs]), 2 ** len(ks) * beta)


# ---- (2) vector-Jacobian product ---------------------------------------------------------


@pytest.mark.parametrize("ks", [(4,), (3, 5), (2, 3, 4), (3, 2, 2, 3)])
def test_vjp_matches_finite_differences(ks):
    rng = np.random.default_rng(10 + len(ks))
    d = 4
    model = Tensor(random_M(rng, d, ks))
    vs = random_layers(rng, ks)
    G = rng.standard_normal(d)
    grads = model.vjp(vs, G)
    h = 1e-5
    for layer, k in enumerate(ks):
        fd = np.empty(k)
        for i in range(k):
            plus = [v.copy() for v in vs]
            minus = [v.copy() for v in vs]
            plus[layer][i] += h
            minus[layer][i] -= h
            fd[i] = (G @ model.predictor(plus) - G @ model.predictor(minus)) / (2 * h)
        np.testing.assert_allclose(grads[layer], fd, rtol=1e-7, atol=1e-9)
    # compiled contraction: all layers at once, and one layer at a time
    theta = model.flatten(vs)
    args = (model.j_idx, model.multi_idx, model.values, model.offsets, G, theta)
    out = np.full(theta.size, np.nan)
    contract(*args, -1, out)
    np.testing.assert_allclose(out, model.flatten(grads), rtol=1e-12, atol=1e-14)
    for layer, k in enumerate(ks):
        one = np.full(k, np.nan)
        contract(*args, layer, one)
        np.testing.assert_allclose(one, grads[layer], rtol=1e-12, atol=1e-14)


# ---- (3) compiled GD kernel vs the NumPy reference ----------------------------------------


def _problem(loss, seed):
    N, d = 12, 5
    if loss == 2:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((N, d))
        return X, rng.standard_normal(N)
    X, y = random_separable(N, d, seed=seed)
    return X * y[:, None], np.zeros(N)


def _run_pair(model, Z, targets, theta0, lr, loss, rule, n_steps=1000):
    d = Z.shape[1]
    rec = np.array([1, 2, 10, 99, 500, n_steps], dtype=np.int64)
    out = []
    for which in ("ref", "numba"):
        theta = theta0.copy()
        rec_theta = np.zeros((len(rec), theta.size))
        if which == "ref":
            status = _reference.gd_model(
                lambda t: model.predictor(model.unflatten(t, d)),
                lambda t, G: model.flatten(model.vjp(model.unflatten(t, d), G)),
                Z, targets, theta, lr, loss, rule, 0, n_steps, rec, rec_theta, -1e10,
            )  # fmt: skip
        else:
            run = model.runner(Z, targets, loss, "float64")
            status = run(theta, lr, rule, 0, n_steps, rec, rec_theta, -1e10)
        out.append((status, theta, rec_theta))
    return out


def _safe_lr(Z, M, rule, loss):
    """Step sizes well inside the stable range, so that 1000 steps stay non-chaotic and the
    float64 round-off of two implementations stays at the 1e-14 level. The normalized rule
    moves a fixed length per step; for the squared loss it is kept short of the minimum
    (where it would bounce and amplify round-off)."""
    if rule == 1:
        return 0.0005 if loss == 2 else 0.002
    curvature = np.linalg.norm(Z, 2) ** 2 * np.linalg.norm(M) ** 2 / Z.shape[1]
    return (0.05 if rule == 0 else 0.01) / curvature


@pytest.mark.parametrize("loss", [0, 1, 2])
@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("ks", [(3,), (4, 3), (3, 2, 4)])
def test_gd_tensor_matches_reference(loss, rule, ks):
    Z, targets = _problem(loss, seed=7 + len(ks))
    rng = np.random.default_rng(3 * len(ks) + loss)
    M = random_M(rng, Z.shape[1], ks, density=0.6)
    model = Tensor(M)
    theta0 = model.flatten(random_layers(rng, ks))
    lr = _safe_lr(Z, M, rule, loss)
    (s_ref, th_ref, r_ref), (s_nb, th_nb, r_nb) = _run_pair(
        model, Z, targets, theta0, lr, loss, rule
    )
    assert s_ref == s_nb == (0, 1000)
    assert np.linalg.norm(th_ref - theta0) > 1e-2  # the run moved
    assert_runs_close(r_nb, r_ref)
    assert_runs_close(th_nb, th_ref)
    assert np.array_equal(r_nb[-1], th_nb)


@pytest.mark.parametrize(
    "model",
    [Tensor.diagonal(5, 3), Tensor.fully_connected(5, [3, 2]), Tensor.convolutional(5, [2, 5])],
    ids=repr,
)
def test_gd_tensor_builders_match_reference(model):
    Z, targets = _problem(1, seed=2)
    rng = np.random.default_rng(0)
    theta0 = model.flatten(random_layers(rng, model.ks))
    lr = _safe_lr(Z, model.to_dense(), 0, 1)
    (s_ref, th_ref, r_ref), (s_nb, th_nb, r_nb) = _run_pair(model, Z, targets, theta0, lr, 1, 0)
    assert s_ref == s_nb == (0, 1000)
    assert np.linalg.norm(th_ref - theta0) > 1e-2
    assert_runs_close(r_nb, r_ref)


NOLO = np.zeros(0)  # no compensation


def test_gd_tensor_chunked_equals_single_call():
    Z, targets = _problem(0, seed=5)
    rng = np.random.default_rng(1)
    M = random_M(rng, Z.shape[1], (3, 4))
    model = Tensor(M)
    theta0 = model.flatten(random_layers(rng, model.ks))
    lr = _safe_lr(Z, M, 0, 0)
    rec = np.array([5, 50, 400, 1000], dtype=np.int64)
    args = (model.j_idx, model.multi_idx, model.values, model.offsets)
    t1, r1 = theta0.copy(), np.zeros((4, theta0.size))
    e1, re1 = np.zeros(1, np.int64), np.zeros(4, np.int64)
    s1 = gd_tensor(Z, targets, t1, lr, 0, 0, 0, 1000, rec, r1, -1e10, e1, re1, NOLO, *args)
    t2, r2 = theta0.copy(), np.zeros((4, theta0.size))
    e2, re2 = np.zeros(1, np.int64), np.zeros(4, np.int64)
    chunks = [(0, 50, slice(0, 2)), (50, 350, slice(2, 3)), (400, 600, slice(3, 4))]
    statuses = [
        gd_tensor(Z, targets, t2, lr, 0, 0, s0, n, rec[sl], r2[sl], -1e10, e2, re2[sl], NOLO, *args)
        for s0, n, sl in chunks
    ]
    assert s1 == (0, 1000) and statuses == [(0, 50), (0, 400), (0, 1000)]
    assert np.array_equal(t1, t2) and np.array_equal(r1, r2)


def test_gd_tensor_divergence_detected_like_reference():
    Z, targets = _problem(0, seed=1)
    Z = Z.copy()
    Z[0] *= -1
    model = Tensor.diagonal(Z.shape[1], 2)
    theta0 = np.full(model.n_params(Z.shape[1]), 0.5)
    with np.errstate(all="ignore"):
        (s_ref, _, _), (s_nb, _, _) = _run_pair(model, Z, targets, theta0, 50.0, 0, 0, 200)
    assert s_ref[0] == 1 and s_nb == s_ref


# ---- (4) builders reproduce the dedicated models ------------------------------------------


def _train_both(X, y, a, b, init_a, init_b, lr, loss="exp"):
    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence-condition warnings are not the point here
        for model, init in ((a, init_a), (b, init_b)):
            runs.append(fb.train(X, y, model=model, init=init, steps=1000, lr=lr, loss=loss))
    return runs


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("loss", ["exp", "squared"])
def test_diagonal_builder_matches_diagonal(L, loss):
    d = 6
    X, y = random_separable(15, d, seed=L)
    if loss == "squared":
        y = np.random.default_rng(L).standard_normal(15)
    rng = np.random.default_rng(L)
    init = [rng.standard_normal(d) / np.sqrt(d) for _ in range(L)]
    tens, diag = Tensor.diagonal(d, L), Diagonal(L)
    np.testing.assert_array_equal(tens.predictor(init), diag.predictor(init))
    G = rng.standard_normal(d)
    for ga, gb in zip(tens.vjp(init, G), diag.vjp(init, G), strict=True):
        np.testing.assert_allclose(ga, gb, rtol=1e-14)
    lr = 0.2 / np.linalg.norm(X, 2) ** 2
    rt, rd = _train_both(X, y, tens, diag, init, init, lr=lr, loss=loss)
    assert_runs_close(rt.history.iterates, rd.history.iterates)
    for pa, pb in zip(rt.params, rd.params, strict=True):
        assert_runs_close(pa, pb)
    assert_runs_close(rt.coef, rd.coef)


@pytest.mark.parametrize("widths", [[], [4], [3, 5], [2, 3, 2]])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_fully_connected_builder_matches_fully_connected(widths, loss):
    d = 5
    X, y = random_separable(12, d, seed=len(widths))
    if loss == "squared":
        y = np.random.default_rng(1).standard_normal(12)
    fc = FullyConnected(widths)
    tens = Tensor.fully_connected(d, widths)
    assert tens.depth == fc.depth
    assert [int(np.prod(s)) for s in fc.shapes(d)] == [k for (k,) in tens.shapes(d)]
    rng = np.random.default_rng(len(widths))
    init = [rng.standard_normal(s) / np.sqrt(np.prod(s)) for s in fc.shapes(d)]
    flat = [W.ravel() for W in init]  # C order: Tensor's v_l is FullyConnected's layer
    np.testing.assert_allclose(tens.predictor(flat), fc.predictor(init), rtol=1e-13)
    G = rng.standard_normal(d)
    np.testing.assert_allclose(
        tens.flatten(tens.vjp(flat, G)), fc.flatten(fc.vjp(init, G)), rtol=1e-12, atol=1e-15
    )
    lr = 0.2 / np.linalg.norm(X, 2) ** 2
    rt, rf = _train_both(X, y, tens, fc, flat, init, lr=lr, loss=loss)
    assert_runs_close(rt.history.iterates, rf.history.iterates)
    for pa, pb in zip(rt.params, rf.params, strict=True):
        assert_runs_close(pa, pb.ravel())


def test_fully_connected_layout_is_c_order():
    d, w = 3, 2
    tens = Tensor.fully_connected(d, [w])
    # x^T W w2 = sum_{r,c} x_r W[r, c] w2[c]: nonzero (j=r, i_1 = r*w + c, i_2 = c)
    expected = {(r, r * w + c, c) for r in range(d) for c in range(w)}
    got = {(j, *m) for j, m in zip(tens.j_idx.tolist(), tens.multi_idx.tolist(), strict=True)}
    assert got == expected and np.all(tens.values == 1.0)


def conv_net_output(x, ws):
    """Time-domain ``f(x) = h_{L-1}.w_L``, ``h_l = h_{l-1} * w_l`` with the circular
    cross-correlation ``(h * w)[i] = sum_{p<k} w[p] h[(i + p) mod d]`` (Gunasekar eq. 2)."""
    d = x.size
    h = np.asarray(x, dtype=np.float64)
    for w in ws[:-1]:
        h = np.array([sum(w[p] * h[(i + p) % d] for p in range(w.size)) for i in range(d)])
    return float(h @ ws[-1])


@pytest.mark.parametrize("d", [5, 6])
@pytest.mark.parametrize("sizes", [1, 2, 3, "small2", "small3", "one"])
def test_convolutional_builder_matches_time_domain(d, sizes):
    ks = {
        "small2": [2, d],
        "small3": [3, 2, d],
        "one": [1, d],
    }.get(sizes, [d] * sizes if isinstance(sizes, int) else None)
    model = Tensor.convolutional(d, sizes if isinstance(sizes, int) else ks)
    assert model.ks == tuple(ks) and model.depth == len(ks)
    rng = np.random.default_rng(d)
    ws = random_layers(rng, ks)
    beta = model.predictor(ws)
    X = rng.standard_normal((7, d))
    np.testing.assert_allclose(X @ beta, [conv_net_output(x, ws) for x in X], rtol=1e-12)


def test_convolutional_bad_sizes():
    with pytest.raises(ValueError, match="last equal to d"):
        Tensor.convolutional(5, [2, 4])
    with pytest.raises(ValueError, match="last equal to d"):
        Tensor.convolutional(5, [6, 5])


def test_convergence_condition_is_none_and_precision_checked():
    model = Tensor.diagonal(3, 2)
    assert model.convergence_condition([np.ones(3), np.ones(3)]) is None
    assert model.convergence_condition([np.ones(3), np.ones(3)], "regression") is None
    with pytest.raises(ValueError, match="float64, compensated or extended"):
        model.runner(np.ones((2, 3)), np.zeros(2), 0, "quad")


# ---- (5) sparse and dense inputs ----------------------------------------------------------


def test_sparse_dense_and_coo_inputs_give_identical_runs():
    rng = np.random.default_rng(4)
    d, ks = 5, (3, 4, 2)
    M = random_M(rng, d, ks, density=0.4)
    dense = Tensor(M)
    csr = Tensor(sp.csr_matrix(M.reshape(d, -1)), shape=ks)
    nz = np.nonzero(M)
    # COO triple with every entry split in two exact halves, in shuffled order
    j = np.concatenate([nz[0], nz[0]])
    multi = np.concatenate([np.stack(nz[1:], axis=1)] * 2)
    vals = np.concatenate([M[nz] / 2, M[nz] / 2])
    perm = rng.permutation(j.size)
    coo = Tensor((j[perm], multi[perm], vals[perm]), shape=M.shape)
    for other in (csr, coo):
        for attr in ("j_idx", "multi_idx", "flat_idx", "values", "offsets"):
            np.testing.assert_array_equal(getattr(other, attr), getattr(dense, attr))
        assert other.ks == dense.ks and other.d == dense.d
    np.testing.assert_array_equal(
        dense.flat_idx, np.ravel_multi_index(tuple(dense.multi_idx.T), ks)
    )
    X, y = random_separable(10, d, seed=0)
    init = random_layers(rng, ks)
    runs = [fb.train(X, y, model=m, init=init, steps=300, lr=0.01) for m in (dense, csr, coo)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.history.iterates, runs[0].history.iterates)
        np.testing.assert_array_equal(r.coef, runs[0].coef)


def test_explicit_zeros_are_dropped():
    M = np.zeros((2, 3))
    M[1, 2] = 3.0
    S = sp.coo_matrix(([3.0, 0.0], ([1, 0], [2, 0])), shape=(2, 3))
    model = Tensor(S, shape=(3,))
    assert model.nnz == 1 and model.depth == 1
    np.testing.assert_array_equal(model.to_dense(), M)


# ---- (6) bad input ------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="ndim >= 2"):
        Tensor(np.ones(3))
    M = np.ones((3, 2, 2))
    M[1, 0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Tensor(M)
    with pytest.raises(ValueError, match="NaN"):
        Tensor(sp.csr_matrix(M.reshape(3, 4)), shape=(2, 2))
    with pytest.raises(ValueError, match="all zero"):
        Tensor(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="k_1 \\* ... \\* k_L = 4"):
        Tensor(sp.csr_matrix(np.ones((3, 4))), shape=(3, 2))
    model = Tensor(np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="M has input dimension 3 but X has d = 4"):
        model.shapes(4)
    X, y = random_separable(6, 4, seed=0)
    with pytest.raises(ValueError, match="M has input dimension 3 but X has d = 4"):
        fb.train(X, y, model=model, steps=5)
    with pytest.raises(ValueError, match="init has 1 arrays"):
        fb.train(X[:, :3], y, model=model, init=[np.ones(2)], steps=5)
    with pytest.raises(ValueError, match="init layer 2"):
        fb.train(X[:, :3], y, model=model, init=[np.ones(2), np.ones(3)], steps=5)


@pytest.mark.parametrize(
    "triple, shape, match",
    [
        (([0, 3], [[0, 0], [1, 1]], [1.0, 1.0]), (3, 2, 2), "data index j = 3"),
        (([0, -1], [[0, 0], [1, 1]], [1.0, 1.0]), (3, 2, 2), "data index j = -1"),
        (([0, 1], [[0, 0], [1, 2]], [1.0, 1.0]), (3, 2, 2), "mode-2 index 2"),
        (([0, 1], [[0, 0], [-1, 0]], [1.0, 1.0]), (3, 2, 2), "mode-1 index -1"),
        (([0, 1], [[0, 0, 0], [1, 1, 1]], [1.0, 1.0]), (3, 2, 2), "multi_idx must have shape"),
        (([0, 1], [[0, 0], [1, 1]], [1.0]), (3, 2, 2), "values has 1 entries"),
        (([0.5, 1], [[0, 0], [1, 1]], [1.0, 1.0]), (3, 2, 2), "j_idx must hold integers"),
        (([0, 1], [[0, 0], [1, 1]], [1.0, np.inf]), (3, 2, 2), "NaN or inf"),
        (([0, 1], [0, 1], [1.0, 1.0]), (3,), "ndim >= 2"),
    ],
)
def test_bad_coo_input(triple, shape, match):
    with pytest.raises(ValueError, match=match):
        Tensor(triple, shape=shape)


def test_depth_one_history_uses_predictor():
    rng = np.random.default_rng(0)
    d = 4
    model = Tensor(rng.standard_normal((d, d)))
    X, y = random_separable(8, d, seed=0)
    run = fb.train(X, y, model=model, init=[0.1 * np.ones(d)], steps=10, lr=0.01)
    np.testing.assert_allclose(run.history.iterates[-1], run.coef, rtol=1e-12)


@pytest.mark.parametrize("d", [5, 6])
@pytest.mark.parametrize("sizes", [None, (1,), (3,), (2, 3)])
@pytest.mark.parametrize("loss", ["exp", "squared"])
def test_tensor_convolutional_trains_like_convolutional(d, sizes, loss):
    """Yun Section 3: the conv data tensor reproduces Convolutional (1e-10 over 1000 steps)."""
    from fastbias.models import Convolutional

    depth = 2 if sizes is None or len(sizes) == 1 else 3
    conv = Convolutional(depth, sizes)
    ks = [s for s, *_ in conv.shapes(d)]
    tens = Tensor.convolutional(d, ks)
    X, y = random_separable(12, d, seed=d)
    if loss == "squared":
        y = np.random.default_rng(1).standard_normal(12)
    init = conv.init_params(d, "gaussian", 0.5, seed=3)
    kw = dict(loss=loss, init=init, steps=1000, lr=0.005, record=[10, 100, 1000], reference=None)
    a = fb.train(X, y, model=conv, **kw)
    b = fb.train(X, y, model=tens, **kw)
    np.testing.assert_allclose(b.history.iterates, a.history.iterates, rtol=1e-10, atol=1e-14)
    for pa, pb in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(pb, pa, rtol=1e-10, atol=1e-14)
