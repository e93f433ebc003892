"""precision="extended" for the deep models: the long double kernels (the tensor network's
fb_gd_tensor_ld and the factored ones of csrc/fb_deep_ld.c, the Fourier one of
csrc/fb_conv_ld.c) against the NumPy specification run in np.longdouble."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.kernels import STATUS_DIVERGED, _reference
from fastbias.models import Convolutional, Diagonal, FullyConnected, LowRank, Tensor
from fastbias.models._layouts import convolutional_layout, low_rank_layout

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")

LD = np.longdouble


def _ld_tensor_maps(tensor):
    """Long double predictor and VJP of a Tensor (straight from its nonzeros)."""
    pos = tensor.multi_idx + tensor.offsets[None, :]
    vals = tensor.values.astype(LD)
    jidx = tensor.j_idx

    def predictor(theta):
        beta = np.zeros(tensor.d, dtype=LD)
        np.add.at(beta, jidx, vals * np.prod(theta[pos], axis=1))
        return beta

    def vjp(theta, G):
        g = np.zeros(theta.shape[0], dtype=LD)
        F = theta[pos]
        for layer in range(pos.shape[1]):
            others = np.prod(np.delete(F, layer, axis=1), axis=1)
            np.add.at(g, pos[:, layer], vals * G[jidx] * others)
        return g

    return predictor, vjp


CASES = [
    (Diagonal(3), Tensor.diagonal(5, 3)),
    (FullyConnected([3]), Tensor.fully_connected(5, [3])),
    (Convolutional(2), Tensor.convolutional(5, [5, 5])),
    (Convolutional(3, kernel_sizes=[2, 3]), Tensor.convolutional(5, [2, 3, 5])),
]


@pytest.mark.parametrize("loss", ["exp", "logistic"])
@pytest.mark.parametrize("rule", ["fixed", "normalized", "loss-scaled"])
@pytest.mark.parametrize("model, tensor", CASES, ids=["diag3", "fc", "conv2", "conv3-small"])
def test_extended_deep_models_match_the_long_double_reference(model, tensor, loss, rule):
    X, y = random_separable(9, 5, seed=3)
    lr, steps = (0.01 if rule == "fixed" else 0.002), 300
    run = fb.train(X, y, model=model, loss=loss, step_rule=rule, lr=lr, steps=steps,
                   precision="extended", reference=None)  # fmt: skip
    theta = model.flatten(model.init_params(5, None, 1.0, 0)).astype(LD)
    predictor, vjp = _ld_tensor_maps(tensor)
    Z = (X * y[:, None]).astype(LD)
    rec = np.zeros((1, theta.size), dtype=LD)
    code = {"exp": 0, "logistic": 1}[loss]
    rule_code = {"fixed": 0, "normalized": 1, "loss-scaled": 2}[rule]
    status, _ = _reference.gd_model(
        predictor, vjp, Z, np.zeros(9, LD), theta, LD(lr), code, rule_code, 0, steps,
        np.array([steps]), rec, LD(-1e300),
    )  # fmt: skip
    assert status == 0
    got = np.concatenate([np.ravel(p) for p in run.params])
    assert got.dtype == LD
    err = np.max(np.abs(got - theta)) / np.max(np.abs(theta))
    assert err < 1e-16, err  # long double round-off (eps 1.1e-19) over 300 steps
    float64 = fb.train(X, y, model=model, loss=loss, step_rule=rule, lr=lr, steps=steps,
                       reference=None)  # fmt: skip
    np.testing.assert_allclose(
        np.concatenate([np.ravel(p) for p in float64.params]), got.astype(float), rtol=1e-9
    )


def test_extended_tensor_and_resume(tmp_path):
    X, y = random_separable(8, 4, seed=5)
    rng = np.random.default_rng(0)
    model = Tensor(rng.standard_normal((4, 3, 2)))
    kw = dict(model=model, lr=0.05, precision="extended", reference=None)
    fb.train(X, y, steps=200, checkpoint=tmp_path / "x.ckpt", **kw)
    resumed = fb.resume(tmp_path / "x.ckpt", steps=300)
    straight = fb.train(X, y, steps=500, **kw)
    for a, b in zip(resumed.params, straight.params, strict=True):
        assert a.dtype == LD
        np.testing.assert_array_equal(a, b)


def _ld_conv_reference(model, Z, theta, lr, loss, rule, steps):
    d = Z.shape[1]
    rec = np.zeros((1, theta.size), dtype=LD)
    pred, vjp = _ld_tensor_maps(Tensor.convolutional(d, model.kernel_widths(d)))
    status, _ = _reference.gd_model(
        pred, vjp, Z, np.zeros(len(Z), LD), theta, LD(lr), loss, rule, 0, steps,
        np.array([steps]), rec, LD(-1e300),
    )  # fmt: skip
    return status


@pytest.mark.parametrize("d, depth, rule", [(16, 3, 0), (17, 2, 1), (12, 2, 2)])
def test_extended_fourier_conv_matches_the_long_double_reference(d, depth, rule):
    """Full-width layers run in the Fourier domain in long double (csrc/fb_conv_ld.c)."""
    from fastbias.kernels import _c

    if not hasattr(_c.lib, "fb_gd_conv_ld"):
        pytest.skip("the C extension is not built")
    X, y = random_separable(10, d, seed=d)
    model = Convolutional(depth)
    lr = {0: None, 1: 0.001, 2: 0.001}[rule]  # None: train's safe default
    run = fb.train(X, y, model=model, lr=lr, steps=200, step_rule=["fixed", "normalized",
                   "loss-scaled"][rule], precision="extended", reference=None)  # fmt: skip
    lr = run.settings["lr"]
    theta = model.flatten(model.init_params(d, None, 1.0, 0)).astype(LD)
    assert _ld_conv_reference(model, (X * y[:, None]).astype(LD), theta, lr, 0, rule, 200) == 0
    got = np.concatenate([np.ravel(p) for p in run.params])
    assert got.dtype == LD
    assert np.max(np.abs(got - theta)) / np.max(np.abs(theta)) < 1e-16


def test_extended_fourier_conv_resume_is_bit_identical(tmp_path):
    X, y = random_separable(8, 6, seed=2)
    kw = dict(model=Convolutional(3), precision="extended", reference=None)
    fb.train(X, y, steps=150, checkpoint=tmp_path / "c.ckpt", **kw)
    resumed = fb.resume(tmp_path / "c.ckpt", steps=250)
    straight = fb.train(X, y, steps=400, **kw)
    for a, b in zip(resumed.params, straight.params, strict=True):
        assert a.dtype == LD
        np.testing.assert_array_equal(a, b)
    steps_r, steps_s = resumed.history["step"], straight.history["step"]
    common = np.intersect1d(steps_r, steps_s)
    np.testing.assert_array_equal(
        resumed.history.iterates[np.isin(steps_r, common)],
        straight.history.iterates[np.isin(steps_s, common)],
    )


@pytest.mark.parametrize("rule", [0, 1, 2])
def test_extended_tensor_stops_on_a_non_finite_gradient_like_the_reference(rule):
    """A gradient that overflows long double while the margins are finite (theta = (0, 1e3000,
    1e3000) for beta = w_1 w_2 w_3: beta = 0 but d beta / d w_1 = 1e6000) stops the run at
    that step, whatever the step rule, as ``_reference.gd_model`` does; a fixed or
    loss-scaled step used to take it and hand back infinite parameters."""
    from fastbias.kernels import _c

    if not _c.available():
        pytest.skip("C extension not built")
    tensor = Tensor.diagonal(1, 3)
    Z = np.array([[1.0], [2.0]], dtype=LD)
    theta0 = np.array([0, LD("1e3000"), LD("1e3000")], dtype=LD)
    rec_steps = np.array([1, 2, 3], dtype=np.int64)
    runs = []
    for kernel in ("C", "reference"):
        theta = theta0.copy()
        rec = np.zeros((3, 3), dtype=LD)
        if kernel == "C":
            pos = tensor.multi_idx + tensor.offsets[None, :]
            out = _c.gd_tensor_extended(
                Z, theta, tensor.j_idx, np.ascontiguousarray(pos), tensor.values.astype(LD),
                LD(0.1), 0, rule, 0, 3, rec_steps, rec, LD(-1e300),
            )  # fmt: skip
        else:
            predictor, vjp = _ld_tensor_maps(tensor)
            with np.errstate(over="ignore", invalid="ignore"):
                out = _reference.gd_model(
                    predictor, vjp, Z, np.zeros(2, LD), theta, LD(0.1), 0, rule, 0, 3,
                    rec_steps, rec, LD(-1e300),
                )  # fmt: skip
        runs.append((out, theta, rec))
    (got, theta, rec), (want, theta_ref, rec_ref) = runs
    assert want == (STATUS_DIVERGED, 0)
    assert got == want
    np.testing.assert_array_equal(theta, theta_ref)
    assert np.all(np.isfinite(theta)) and np.all(rec == 0)


@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_extended_fourier_conv_double_double_x87_and_chunks(depth, loss, monkeypatch):
    """With AVX2 the spectral part of a step runs in double-double on the spectra's pairs
    (fb_conv_dd in csrc/fb_conv_ld.c), each updated entry rounded to long double: it agrees
    with the x87 path (FASTBIAS_NO_AVX2=1) to long double round-off, and a run in chunks is
    the run in one call bit for bit (d = 10: half spectra of 6, padded to 8 lanes)."""
    from fastbias.kernels import _c

    if not hasattr(_c.lib, "fb_gd_conv_ld"):
        pytest.skip("the C extension is not built")
    X, y = random_separable(13, 10, seed=depth)
    Z = X * y[:, None]
    model = Convolutional(depth)
    theta0 = model.flatten(model.init_params(10, None, 1.0, 0)).astype(LD)
    none, rec0 = np.zeros(0, np.int64), np.zeros((0, theta0.size), LD)
    out = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("FASTBIAS_NO_AVX2", flag)
        run = model.runner(Z, np.zeros(13), loss, "extended")
        theta = theta0.copy()
        assert run(theta, LD(0.01), 0, 0, 300, none, rec0, LD(-1e300)) == (0, 300)
        out[flag] = theta
        parts = theta0.copy()
        run = model.runner(Z, np.zeros(13), loss, "extended")
        assert run(parts, LD(0.01), 0, 0, 137, none, rec0, LD(-1e300)) == (0, 137)
        assert run(parts, LD(0.01), 0, 137, 163, none, rec0, LD(-1e300)) == (0, 300)
        np.testing.assert_array_equal(parts, theta)
    assert np.max(np.abs(out["0"] - out["1"])) / np.max(np.abs(out["1"])) < 1e-17


def _random_tensor(d, ks, per, seed):
    rng = np.random.default_rng(seed)
    jidx = np.repeat(np.arange(d), per)
    multi = np.stack([rng.integers(0, k, jidx.size) for k in ks], axis=1)
    return Tensor((jidx, multi, rng.standard_normal(jidx.size) / 4), (d, *ks))


TIME_DOMAIN_CASES = {  # models whose extended runs take fb_gd_tensor_ld: name -> (model, layout)
    "lowrank2": lambda d: (LowRank(2), low_rank_layout(4, d // 4, 2)),
    "tensor3": lambda d: (t := _random_tensor(d, (3, 4, 2), 3, 7), t.layout()),
    "conv2-kernel3": lambda d: (
        Convolutional(2, kernel_sizes=[3]),
        convolutional_layout(d, [3, d]),
    ),
}


@pytest.mark.parametrize("no_avx2", ["0", "1"])
@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("case", sorted(TIME_DOMAIN_CASES))
def test_extended_tensor_kernel_matches_the_long_double_reference(case, rule, loss, no_avx2,
                                                                 monkeypatch):  # fmt: skip
    """fb_gd_tensor_ld runs the contraction and its VJP on the layout's nonzeros and the data
    products in double-double on AVX2 (csrc/fb_deep_ld.c, as the factored kernels), x87 with
    FASTBIAS_NO_AVX2=1: both agree with the np.longdouble specification to long double
    round-off. N = 37 rows: blocks of 8 in the double-double products and a tail."""
    monkeypatch.setenv("FASTBIAS_NO_AVX2", no_avx2)
    N, d = 37, 16
    model, layout = TIME_DOMAIN_CASES[case](d)
    X, y = random_separable(N, d, seed=11)
    Z = (X * y[:, None]).astype(LD)
    theta0 = model.flatten(model.init_params(d, None, 1.0, 0)).astype(LD)
    lr = 0.01 if rule == 0 else 0.002
    rec_steps = np.array([1, 100, 200], dtype=np.int64)
    out = []
    for which in ("kernel", "reference"):
        theta = theta0.copy()
        rec = np.zeros((3, theta.size), dtype=LD)
        if which == "kernel":
            run = model.runner(Z, np.zeros(N), loss, "extended")
            got = run(theta, LD(lr), rule, 0, 200, rec_steps, rec, LD(-1e300))
        else:
            predictor, vjp = _ld_tensor_maps(layout)
            got = _reference.gd_model(
                predictor, vjp, Z, np.zeros(N, LD), theta, LD(lr), loss, rule, 0, 200,
                rec_steps, rec, LD(-1e300),
            )  # fmt: skip
        out.append((got, theta, rec))
    (got, theta, rec), (want, theta_ref, rec_ref) = out
    assert got == want == (0, 200)
    scale = np.max(np.abs(theta_ref))
    assert np.max(np.abs(theta - theta_ref)) / scale < 1e-17
    assert np.max(np.abs(rec - rec_ref)) / scale < 1e-17


def test_extended_kernels_name_data_past_the_double_range():
    """The kernels hold the data as double pairs; data past 1.8e308 (possible only in a long
    double array handed to the kernels directly: train takes float64) are named as such,
    not reported as a layout error."""
    from fastbias.kernels import _c

    if not _c.available():
        pytest.skip("C extension not built")
    Z = np.array([[LD("1e400"), LD(1)], [LD(2), LD(1)]], dtype=LD)
    none = (np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=LD))
    tensor = Tensor.diagonal(2, 2)
    pos = np.ascontiguousarray(tensor.multi_idx + tensor.offsets[None, :])
    calls = {
        "tensor": lambda: _c.gd_tensor_extended(
            Z,
            np.ones(4, LD),
            tensor.j_idx,
            pos,
            tensor.values.astype(LD),
            LD(0.1),
            0,
            0,
            0,
            3,
            *none,
            LD(-1e300),
        ),
        "diagonal": lambda: _c.gd_diagonal_extended(
            Z, np.ones(4, LD), 2, LD(0.1), 0, 0, 0, 3, *none, LD(-1e300)
        ),
        "fc": lambda: _c.gd_fc_extended(
            Z,
            np.ones(4, LD),
            np.array([2, 1]),
            np.array([0, 2]),
            LD(0.1),
            0,
            0,
            0,
            3,
            *none,
            LD(-1e300),
        ),
        "conv": lambda: _c.gd_conv_extended(
            Z,
            np.ones(4, LD),
            np.zeros((2, 2, 2), LD),
            0,
            2,
            LD(0.1),
            0,
            0,
            0,
            3,
            *none,
            LD(-1e300),
        ),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=f"fb_gd_{name}_ld: the data Z have entries outside"):
            call()
