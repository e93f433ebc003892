"""The C float64 kernels of the deep models (csrc/fb_deep_f64.c) against the NumPy reference
(_reference.gd_model with each model's predictor and VJP) and the numba kernels they replace."""

import numpy as np
import pytest
from conftest import random_separable

from fastbias.kernels import _c, _deep, _reference
from fastbias.kernels._fft import real_fourier_rows
from fastbias.models import Convolutional, Diagonal, FullyConnected, Tensor

pytestmark = [
    pytest.mark.skipif(
        not (_c.available() and hasattr(_c.lib, "fb_gd_diagonal_f64")),
        reason="the C extension is not built",
    ),
    pytest.mark.filterwarnings("ignore:the initialization does not satisfy"),
]

RTOL = 1e-10


def _random_tensor(d, ks, per, seed):
    rng = np.random.default_rng(seed)
    jidx = np.repeat(np.arange(d), per)
    multi = np.stack([rng.integers(0, k, jidx.size) for k in ks], axis=1)
    return Tensor((jidx, multi, rng.standard_normal(jidx.size)), (d, *ks))


D = 6
MODELS = [
    Diagonal(1),
    Diagonal(2),
    Diagonal(3),
    FullyConnected([4]),
    FullyConnected([5, 3]),
    _random_tensor(D, (3, 4), 3, seed=1),
    _random_tensor(D, (3, 2, 4), 4, seed=2),
    Convolutional(1),
    Convolutional(2),
    Convolutional(3),
]
IDS = ["diag1", "diag2", "diag3", "fc4", "fc53", "tensor2", "tensor3", "conv1", "conv2", "conv3"]


def _c_run(model, Z, theta, lr, loss, rule, step0, n, rec, rec_theta, floor, spec=None):
    """The C kernel alone (no numba hand-over)."""
    if isinstance(model, Diagonal):
        return _c.gd_diagonal_float64(Z, theta, model.depth, lr, loss, rule, step0, n, rec,
                                      rec_theta, floor)  # fmt: skip
    if isinstance(model, FullyConnected):
        dims = np.array(model.dims(Z.shape[1]), dtype=np.int64)
        sizes = [a * b for a, b in zip(dims[:-1], dims[1:], strict=True)] + [dims[-1]]
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return _c.gd_fc_float64(Z, theta, dims, offs, lr, loss, rule, step0, n, rec, rec_theta,
                                floor)  # fmt: skip
    if isinstance(model, Tensor):
        pos = np.ascontiguousarray(model.multi_idx + model.offsets[None, :])
        return _c.gd_tensor_float64(Z, theta, model.j_idx, pos, model.values, lr, loss, rule,
                                    step0, n, rec, rec_theta, floor)  # fmt: skip
    ZF = real_fourier_rows(Z)
    use = spec is not None
    if spec is None:
        spec = np.zeros((model.depth, 2, Z.shape[1] // 2 + 1))
    return _c.gd_conv_float64(ZF, theta, model.depth, spec, use, lr, loss, rule, step0, n, rec,
                              rec_theta, floor)  # fmt: skip


def _problem(model, loss, rule, seed=5):
    X, y = random_separable(20, D, seed=seed)
    Z = X * y[:, None]
    theta0 = model.flatten(model.init_params(D, "gaussian", 0.7, seed=seed))
    s2 = np.linalg.norm(Z, 2) ** 2
    lr = {0: 0.05 / s2, 1: 2e-3, 2: 0.01 / s2}[rule]
    return Z, theta0, lr


def _reference_run(model, Z, theta, lr, loss, rule, n, rec, floor=-1e10):
    rec_theta = np.zeros((len(rec), theta.size))
    st = _reference.gd_model(
        lambda th: model.predictor(model.unflatten(th, D)),
        lambda th, G: model.flatten(model.vjp(model.unflatten(th, D), G)),
        Z, np.zeros(len(Z)), theta, lr, loss, rule, 0, n, rec, rec_theta, floor,
    )  # fmt: skip
    return st, rec_theta


@pytest.mark.parametrize("model", MODELS, ids=IDS)
@pytest.mark.parametrize("loss, rule", [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)])
def test_c_kernel_matches_reference(model, loss, rule):
    Z, theta0, lr = _problem(model, loss, rule)
    rec = np.array([1, 2, 30, 400, 600], dtype=np.int64)
    th_ref = theta0.copy()
    st_ref, r_ref = _reference_run(model, Z, th_ref, lr, loss, rule, 600, rec)
    th = theta0.copy()
    r = np.zeros_like(r_ref)
    st = _c_run(model, Z, th, lr, loss, rule, 0, 600, rec, r, -1e10)
    assert st == st_ref == (0, 600)
    scale = np.abs(r_ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(r - r_ref) <= RTOL * scale)
    np.testing.assert_array_equal(r[-1], th)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_c_chunked_calls_equal_one_call(model):
    Z, theta0, lr = _problem(model, 0, 0, seed=8)
    rec = np.array([3, 50, 300], dtype=np.int64)
    th1, r1 = theta0.copy(), np.zeros((3, theta0.size))
    _c_run(model, Z, th1, lr, 0, 0, 0, 300, rec, r1, -1e10)
    run = model.runner(Z, np.zeros(len(Z)), 0, "float64")
    th2, r2 = theta0.copy(), np.zeros((3, theta0.size))
    run(th2, lr, 0, 0, 40, rec[:1], r2[:1], -1e10)
    run(th2, lr, 0, 40, 260, rec[1:], r2[1:], -1e10)
    run3 = model.runner(Z, np.zeros(len(Z)), 0, "float64")
    th3, r3 = theta0.copy(), np.zeros((3, theta0.size))
    run3(th3, lr, 0, 0, 300, rec, r3, -1e10)
    np.testing.assert_array_equal(th2, th3)
    np.testing.assert_array_equal(r2, r3)
    np.testing.assert_allclose(th1, th3, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("model", MODELS, ids=IDS)
def test_runner_c_and_numba_backends_agree(model, monkeypatch):
    Z, theta0, lr = _problem(model, 1, 0, seed=9)
    rec = np.array([10, 500], dtype=np.int64)
    out = []
    for backend in ("auto", "numba"):
        monkeypatch.setenv("FASTBIAS_BACKEND", backend)
        th, r = theta0.copy(), np.zeros((2, theta0.size))
        assert model.runner(Z, np.zeros(len(Z)), 1, "float64")(
            th, lr, 0, 0, 500, rec, r, -1e10
        ) == (0, 500)
        out.append(r)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-11, atol=1e-14)


def test_numba_backend_is_forced_by_the_environment(monkeypatch):
    lo, scale = np.zeros(0), np.zeros(1, dtype=np.int64)
    assert _deep.c_eligible(0, 0, lo, scale) is _c
    assert _deep.c_eligible(1, 2, lo, scale) is None  # logistic + loss-scaled: numba
    assert _deep.c_eligible(2, 0, lo, scale) is None  # squared loss: numba
    assert _deep.c_eligible(0, 0, np.zeros(3), scale) is None  # compensated: numba
    assert _deep.c_eligible(0, 0, lo, np.ones(1, dtype=np.int64)) is None  # scaled: numba
    monkeypatch.setenv("FASTBIAS_BACKEND", "numba")
    assert _deep.c_eligible(0, 0, lo, scale) is None


@pytest.mark.parametrize(
    "model",
    [Diagonal(2), FullyConnected([3]), Convolutional(2), MODELS[6]],
    ids=["diag2", "fc3", "conv2", "tensor3"],
)
def test_handover_to_numba_past_two_to_the_16(model):
    """Normalized steps from ||theta|| ~ 6e4: the C kernel stops (code 2) when the norm passes
    2**16, the numba kernel goes on with theta = 2**e theta_s; the same run as numba alone."""
    Z, theta0, _ = _problem(model, 0, 1, seed=4)
    theta0 = theta0 / np.linalg.norm(theta0) * 6e4
    lr, n = 2e3, 200
    rec = np.array([1, 50, 200], dtype=np.int64)
    th = theta0.copy()
    code, step = _c_run(model, Z, th, lr, 0, 1, 0, n, rec, np.zeros((3, th.size)), -1e300)
    assert code == _c.STATUS_HANDOVER and 0 < step < n
    out = []
    for backend in ("auto", "numba"):
        import os

        old = os.environ.get("FASTBIAS_BACKEND")
        os.environ["FASTBIAS_BACKEND"] = backend
        try:
            run = model.runner(Z, np.zeros(len(Z)), 0, "float64")
            th, r = theta0.copy(), np.zeros((3, theta0.size))
            scale, rs = np.zeros(1, dtype=np.int64), np.zeros(3, dtype=np.int64)
            assert run(th, lr, 1, 0, n, rec, r, -1e300, scale, rs) == (0, n)
            assert scale[0] > 0
            out.append(np.ldexp(r, rs[:, None]))
        finally:
            if old is None:
                del os.environ["FASTBIAS_BACKEND"]
            else:
                os.environ["FASTBIAS_BACKEND"] = old
    np.testing.assert_allclose(out[0], out[1], rtol=1e-9)


@pytest.mark.parametrize("model", [Diagonal(2), FullyConnected([3]), Convolutional(2)],
                         ids=["diag2", "fc3", "conv2"])  # fmt: skip
def test_divergence_at_the_reference_step(model):
    Z, theta0, _ = _problem(model, 0, 0, seed=6)
    lr, floor = 5.0, -50.0
    rec = np.array([100], dtype=np.int64)
    st_ref, _ = _reference_run(model, Z, theta0.copy(), lr, 0, 0, 100, rec, floor)
    th = theta0.copy()
    st = _c_run(model, Z, th, lr, 0, 0, 0, 100, rec, np.zeros((1, th.size)), floor)
    assert st_ref[0] == 1 and st == st_ref


def test_bad_arguments_are_rejected():
    Z = np.ones((4, 3))
    th = np.ones(6)
    with pytest.raises(ValueError, match="logistic"):
        _c.gd_diagonal_float64(Z, th, 2, 0.1, 1, 2, 0, 5, np.zeros(0, np.int64),
                               np.zeros((0, 6)), -1e10)  # fmt: skip
    with pytest.raises(ValueError, match="bad sizes"):
        _c.gd_diagonal_float64(Z, th, 0, 0.1, 0, 0, 0, 5, np.zeros(0, np.int64),
                               np.zeros((0, 6)), -1e10)  # fmt: skip
    with pytest.raises(TypeError, match="float64"):
        _c.gd_diagonal_float64(Z.astype(np.float32), th, 2, 0.1, 0, 0, 0, 5,
                               np.zeros(0, np.int64), np.zeros((0, 6)), -1e10)  # fmt: skip
