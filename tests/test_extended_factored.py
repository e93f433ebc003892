"""precision="extended" for Diagonal and FullyConnected in factored form (csrc/fb_deep_ld.c)
against the NumPy specification (_reference.gd_model) run in np.longdouble, and against the
long double tensor kernel (fb_gd_tensor_ld, the same data products, the predictor and VJP
from the layout's nonzeros)."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.kernels import _c, _reference
from fastbias.models import Diagonal, FullyConnected
from fastbias.models._layouts import (
    diagonal_layout,
    extended_tensor_runner,
    fully_connected_layout,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:the initialization does not satisfy"),
    pytest.mark.skipif(
        not (_c.available() and hasattr(_c.lib, "fb_gd_diagonal_ld")),
        reason="the C extension is not built",
    ),
]

LD = np.longdouble


def _ld_maps(model, d):
    """The model's predictor and VJP written out in np.longdouble (the models' own methods
    compute in float64)."""
    if isinstance(model, Diagonal):
        L = model.depth

        def predictor(theta):
            return np.prod(theta.reshape(L, d), axis=0)

        def vjp(theta, G):
            W = theta.reshape(L, d)
            return np.concatenate(
                [G * np.prod(np.delete(W, layer, axis=0), axis=0) for layer in range(L)]
            )

        return predictor, vjp
    shapes = model.shapes(d)
    ends = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

    def layers(theta):
        return [theta[a:b].reshape(s) for a, b, s in zip(ends[:-1], ends[1:], shapes, strict=True)]

    def predictor(theta):
        *Ws, beta = layers(theta)
        for W in reversed(Ws):
            beta = W @ beta
        return beta

    def vjp(theta, G):
        *Ws, w = layers(theta)
        right, b = [], w
        for W in reversed(Ws):
            right.insert(0, b)
            b = W @ b
        out, a = [], G
        for W, r in zip(Ws, right, strict=True):
            out.append(np.outer(a, r).ravel())
            a = W.T @ a
        out.append(a)
        return np.concatenate(out)

    return predictor, vjp


def _runs(model, Z, theta0, lr, loss, rule, steps, rec_steps):
    """(kernel, reference, tensor kernel): each (status, step, theta, rec)."""
    N, d = Z.shape
    out = []
    layout = (
        diagonal_layout(d, model.depth)
        if isinstance(model, Diagonal)
        else fully_connected_layout(d, model.widths)
    )
    predictor, vjp = _ld_maps(model, d)
    for which in ("kernel", "reference", "tensor"):
        theta = theta0.copy()
        rec = np.zeros((rec_steps.size, theta.size), dtype=LD)
        if which == "kernel":
            run = model.runner(Z, np.zeros(N), loss, "extended")
            status, step = run(theta, LD(lr), rule, 0, steps, rec_steps, rec, LD(-1e300))
        elif which == "tensor":
            run = extended_tensor_runner(layout, Z, loss)
            status, step = run(theta, LD(lr), rule, 0, steps, rec_steps, rec, LD(-1e300))
        else:
            status, step = _reference.gd_model(
                predictor, vjp, Z.astype(LD), np.zeros(N, LD), theta, LD(lr), loss, rule, 0,
                steps, rec_steps, rec, LD(-1e300),
            )  # fmt: skip
        out.append((status, step, theta, rec))
    return out


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


CASES = [
    (Diagonal(2), 37, 21),  # blocks of 8 rows (AVX2 double-double products) and a tail
    (FullyConnected([9]), 29, 19),
    (Diagonal(2), 9, 5),
    (Diagonal(3), 13, 7),
    (Diagonal(1), 6, 4),
    (FullyConnected([3]), 9, 5),
    (FullyConnected([4, 3]), 11, 6),
    (FullyConnected([]), 7, 3),
]


@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("rule", [0, 1, 2])
@pytest.mark.parametrize("model, N, d", CASES, ids=[repr(c[0]) for c in CASES])
def test_factored_extended_matches_the_long_double_reference(model, N, d, loss, rule):
    X, y = random_separable(N, d, seed=N + d)
    Z = X * y[:, None]
    theta0 = model.flatten(model.init_params(d, None, 1.0, 0)).astype(LD)
    lr = 0.01 if rule == 0 else 0.002
    rec_steps = np.array([1, 150, 300], dtype=np.int64)
    kern, ref, tens = _runs(model, Z, theta0, lr, loss, rule, 300, rec_steps)
    assert kern[:2] == ref[:2] == tens[:2] == (0, 300)
    assert kern[2].dtype == LD
    # long double round-off (eps 1.1e-19) over 300 steps: 2e-19 at most over these cases and
    # rules (the loss-scaled rule's 7e-18 came from the reference's sum rounded to float64)
    assert _rel(kern[2], ref[2]) < 1e-17
    assert _rel(kern[3], ref[3]) < 1e-17
    # the tensor kernel is the same arithmetic in another order
    assert _rel(kern[2], tens[2]) < 1e-17
    np.testing.assert_array_equal(kern[3][-1], kern[2])


def test_factored_extended_data_with_more_than_double_precision():
    """Rows y x given in long double with bits below double precision: the kernel holds them
    as exact double pairs (the second read only when nonzero)."""
    X, y = random_separable(19, 17, seed=1)
    Z = (X * y[:, None]).astype(LD) * (1 + LD(2.0) ** -60)
    assert np.any(Z.astype(np.float64).astype(LD) != Z)
    for model in (Diagonal(2), FullyConnected([5])):
        theta0 = model.flatten(model.init_params(17, None, 1.0, 0)).astype(LD)
        kern, ref, _ = _runs(model, Z, theta0, 0.01, 0, 0, 200, np.array([200]))
        assert _rel(kern[2], ref[2]) < 1e-17
        low = model.runner(Z.astype(np.float64), np.zeros(19), 0, "extended")
        theta = theta0.copy()
        low(
            theta, LD(0.01), 0, 0, 200, np.zeros(0, np.int64), np.zeros((0, theta.size), LD), -1e300
        )
        assert _rel(theta, kern[2]) > 1e-19  # the low bits were used


@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("model", [Diagonal(2), FullyConnected([4]), FullyConnected([7, 3])])
def test_factored_extended_divergence_and_chunks(model, loss):
    """Chunks equal one call bit for bit: with AVX2 the FC update sums in double-double and
    rounds each parameter to long double (widths 7 and 3: vector tails)."""
    X, y = random_separable(8, 5, seed=4)
    Z = X * y[:, None]
    run = model.runner(Z, np.zeros(8), loss, "extended")
    theta0 = model.flatten(model.init_params(5, None, 1.0, 0)).astype(LD)
    none, rec0 = np.zeros(0, np.int64), np.zeros((0, theta0.size), LD)
    # the divergence test at the first step: min margin not above the floor
    theta = theta0.copy()
    assert run(theta, LD(0.01), 0, 7, 10, none, rec0, LD(1e300)) == (1, 7)
    np.testing.assert_array_equal(theta, theta0)
    # a run in chunks is the run in one call, bit for bit
    one, parts = theta0.copy(), theta0.copy()
    run(one, LD(0.01), 0, 0, 100, none, rec0, LD(-1e300))
    run(parts, LD(0.01), 0, 0, 37, none, rec0, LD(-1e300))
    run(parts, LD(0.01), 0, 37, 63, none, rec0, LD(-1e300))
    np.testing.assert_array_equal(one, parts)


def test_factored_extended_train_and_argument_errors():
    X, y = random_separable(12, 6, seed=6)
    run = fb.train(X, y, model=FullyConnected([4]), lr=0.01, steps=100, precision="extended",
                   reference=None)  # fmt: skip
    assert all(p.dtype == LD for p in run.params)
    assert np.isfinite(run.history["loss"]).all()
    Z = np.ascontiguousarray(X * y[:, None], dtype=LD)
    theta = np.zeros(12, dtype=LD)
    none, rec0 = np.zeros(0, np.int64), np.zeros((0, 12), LD)
    with pytest.raises(TypeError, match="theta"):
        _c.gd_diagonal_extended(Z, theta.astype(float), 2, 0.1, 0, 0, 0, 1, none, rec0, -1e300)
    with pytest.raises(ValueError, match="theta"):
        _c.gd_diagonal_extended(Z, theta[:5], 2, 0.1, 0, 0, 0, 1, none, rec0[:, :5], -1e300)
    with pytest.raises(ValueError, match="loss"):
        _c.gd_diagonal_extended(Z, theta, 2, 0.1, 5, 0, 0, 1, none, rec0, -1e300)
    dims, offsets = np.array([7, 2], dtype=np.int64), np.array([0, 12], dtype=np.int64)
    with pytest.raises(ValueError):  # dims[0] is not d
        _c.gd_fc_extended(Z, np.zeros(14, LD), dims, offsets, 0.1, 0, 0, 0, 1, none,
                          np.zeros((0, 14), LD), -1e300)  # fmt: skip


@pytest.mark.parametrize("model", [Diagonal(3), FullyConnected([7])])
@pytest.mark.parametrize("loss", [0, 1])
def test_double_double_and_x87_products_agree(model, loss, monkeypatch):
    """FASTBIAS_NO_AVX2 selects the x87 loop for the O(N d) products (the fallback on CPUs
    without AVX2/FMA): both agree to long double round-off."""
    X, y = random_separable(41, 24, seed=9)
    Z = X * y[:, None]
    run = model.runner(Z, np.zeros(41), loss, "extended")
    theta0 = model.flatten(model.init_params(24, None, 1.0, 0)).astype(LD)
    none, rec0 = np.zeros(0, np.int64), np.zeros((0, theta0.size), LD)
    out = []
    for flag in ("0", "1"):
        monkeypatch.setenv("FASTBIAS_NO_AVX2", flag)
        theta = theta0.copy()
        assert run(theta, LD(0.01), 0, 0, 300, none, rec0, LD(-1e300)) == (0, 300)
        out.append(theta)
    assert _rel(out[0], out[1]) < 1e-17


@pytest.mark.parametrize("model", [Diagonal(2), FullyConnected([3])])
def test_parameters_past_the_double_range_take_the_long_double_path(model):
    """Parameters are held as double pairs during a call only when every |theta_i| < 1e300;
    otherwise the kernel keeps them in long double (the same run, slower)."""
    X, y = random_separable(11, 5, seed=8)
    Z = X * y[:, None]
    Z[:, 0] = 0  # G[0] = 0: the huge weights below stay as they are and meet zeros only
    theta0 = model.flatten(model.init_params(5, None, 1.0, 0)).astype(LD)
    big = theta0.copy()
    if isinstance(model, Diagonal):
        big[0] = LD("1e310")
    else:  # the row of W_1 for input 0
        big[0:3] = LD("1e310")
    kern, ref, _ = _runs(model, Z, big, 0.01, 0, 1, 100, np.array([100]))
    assert kern[:2] == ref[:2] == (0, 100)
    assert np.all(np.isfinite(kern[2])) and np.max(np.abs(kern[2])) > 1e300
    assert _rel(kern[2], ref[2]) < 1e-16


def test_double_double_exp_against_long_double_exp():
    """The exp loss's weights e^x (x = s - m_n <= 0) in double-double (fb_ld_dd.h,
    fb_dd_exp_weights) against np.exp in np.longdouble (expl, within an ulp, 5.4e-20): within
    2e-19 relative from 0 down to the double range's end, exactly 1 at 0 and 0 far below."""
    out = _c.dd_exp_check(np.zeros(1), np.zeros(1))
    if out is None:
        pytest.skip("the double-double code needs AVX2/FMA")
    assert out[0][0] == 1.0 and out[1][0] == 0.0
    rng = np.random.default_rng(3)
    # every reduction interval: a dense grid near 0, random points to -745, the split at -650
    x = np.concatenate([
        -np.linspace(0, 2, 4001), -rng.uniform(0, 745, 20000), -np.geomspace(1e-30, 1, 200),
        [-649.999, -650.0, -650.001, -700.0, -708.3, -744.0],
    ])  # fmt: skip
    # low parts: x as a long double with 11 bits below double precision (what the margins
    # give), so that x + xl is exact in np.longdouble and the reference's argument is x
    xl = np.round(rng.uniform(-1, 1, x.size) * 2.0**10) * (np.spacing(x) / 2.0**11)
    qh, ql = _c.dd_exp_check(x, xl)
    got = qh.astype(LD) + ql.astype(LD)
    want = np.exp(x.astype(LD) + xl.astype(LD))
    # (the reference's and the sum's roundings are 1.1e-19 each at most, for E near 1/2;
    # below e^-708 the pair's low part is subnormal or zero: half the smallest subnormal)
    assert np.all(np.abs(got - want) <= 2.5e-19 * want + LD(2.0) ** -1075)
    ok = x > -650  # the double-double lanes
    assert np.max(np.abs(got[ok] - want[ok]) / want[ok]) < 2.5e-19
    # the pairs are exact double pairs: |ql| at most half an ulp of qh
    assert np.all(np.abs(ql) <= np.spacing(qh) / 2)
    # far below: exactly 0 (fb_expl_nonpos)
    qh, ql = _c.dd_exp_check(np.array([-1e4, -1e5, -1e300]), np.zeros(3))
    assert np.all(qh == 0) and np.all(ql == 0)
