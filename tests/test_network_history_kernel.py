"""The compiled network history (kernels/_numba_network_history.py) against its NumPy
specification (optim.history.build_network_history_numpy): the same columns, arrays and
overflow notes, bit for bit (to 1e-14 on CPUs where NumPy's exp/log are not libm's); on runs
of several architectures and every loss, on rows built to reach the edges (zero rows, rows far
from unit scale, rows past float64), and NumPy's pairwise summation order on its own."""

import math

import numpy as np
import pytest
from conftest import random_separable

from fastbias.kernels._numba_network_history import _pairwise
from fastbias.models.network import Network
from fastbias.optim import history
from fastbias.optim.driver import drive
from fastbias.optim.gd import train_spec
from fastbias.optim.history import build_network_history, build_network_history_numpy


def _numpy_exp_log_are_libms() -> bool:
    """Whether NumPy's float64 exp and log loops give libm's results (math.exp/log, which the
    kernel calls) here: on AVX512F CPUs NumPy dispatches its own SIMD exp/log, within a few
    ulp of libm's but not equal, and the columns made from them can only agree to that."""
    x = np.random.default_rng(0).uniform(-700.0, 700.0, 20_000)
    y = np.abs(x) + 1e-300
    return bool(
        np.array_equal(np.exp(x), [math.exp(v) for v in x])
        and np.array_equal(np.log(y), [math.log(v) for v in y])
    )


_BITWISE = _numpy_exp_log_are_libms()


def _identical(got, want):
    assert list(got.columns) == list(want.columns)
    assert list(got.arrays) == list(want.arrays)
    assert got.overflowed == want.overflowed
    for name in want.columns:
        a, b = np.asarray(got.columns[name]), np.asarray(want.columns[name])
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if _BITWISE or a.dtype.kind != "f":
            assert a.tobytes() == b.tobytes(), name
        else:  # (NumPy's SIMD exp/log here: a few ulp, and NaN/inf where the other has them)
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=0, err_msg=name)
    for name in want.arrays:
        a, b = got.arrays[name], want.arrays[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name
    assert got.scaled_iterates.tobytes() == want.scaled_iterates.tobytes()
    np.testing.assert_array_equal(got.iterate_scale, want.iterate_scale)
    if "iterates" not in want.overflowed:
        assert got.iterates.tobytes() == want.iterates.tobytes()


def _both(*args, **kw):
    return build_network_history(*args, **kw), build_network_history_numpy(*args, **kw)


def test_pairwise_sum_is_numpys_bit_for_bit():
    rng = np.random.default_rng(3)
    for n in [*range(0, 300), 511, 1000, 1027, 4099]:
        a = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 4, n)
        assert 0.0 + _pairwise(a, 0, n) == np.sum(a)
        if n:  # np.add.reduceat: the first entry, then the rest
            assert a[0] + _pairwise(a, 1, n - 1) == np.add.reduceat(a, [0])[0]


NETS = [
    Network.fully_connected(6, [5]),
    Network.fully_connected(6, [4, 3]),
    Network.fully_connected(6, [3], activation="linear"),
    Network.conv_disjoint_patches(6, 3),
    Network.diagonal(6, 2),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("net", NETS, ids=repr)
@pytest.mark.parametrize("loss", ["exp", "logistic", "squared"])
def test_runs_match_the_numpy_history(net, loss, monkeypatch):
    X, y = random_separable(20, 6, seed=2)
    if loss == "squared":
        y = X @ np.linspace(-1, 1, 6)
    lr = 0.005 if loss == "squared" else 0.05
    spec = train_spec(X, y, model=net, loss=loss, steps=200, lr=lr, seed=1)
    state, _ = drive(spec)
    k = state.k_rec
    args = (spec.schedule[:k], state.rec[:k], net, spec.X, spec.y, loss, {})
    want = build_network_history_numpy(*args, theta_scale=state.rec_scale[:k])

    def no_fallback(*a, **kw):
        raise AssertionError("an ordinary run went to the NumPy path")

    monkeypatch.setattr(history, "build_network_history_numpy", no_fallback)
    _identical(build_network_history(*args, theta_scale=state.rec_scale[:k]), want)


@pytest.mark.parametrize("loss", ["exp", "logistic", "squared"])
def test_edge_rows_match_the_numpy_history(loss):
    """Zero rows, rows far from unit scale (the NumPy path normalizes them) and rows whose
    magnitudes overflow float64 (overflow notes): the same history either way."""
    net = Network.fully_connected(4, [3])
    X, y = random_separable(10, 4, seed=5)
    rng = np.random.default_rng(0)
    t = rng.standard_normal(net.n_total)
    steps = np.arange(1, 4)
    cases = [
        (np.array([t, 0 * t, 2 * t]), np.array([0, 0, 3])),
        (np.array([t, t * 1e30, t]), None),  # one row far from unit scale
        (np.array([t, t, t]), np.array([0, 600, 1100])),  # past float64
        (np.array([t * 1e-3, t, -t]), np.array([-40, 5, 0])),
    ]
    for thetas, scale in cases:
        _identical(*_both(steps, thetas, net, X, y, loss, {}, theta_scale=scale))


def test_normalize_rows_and_range_check_are_the_numpy_ones():
    """normalize_rows == history._normalize_rows byte for byte (zero, subnormal, huge,
    NaN and inf rows), and rows_in_range is true exactly when _unit_rows_if_extreme leaves
    the rows as they are (the histories call the compiled ones)."""
    from fastbias.kernels._numba_network_history import normalize_rows, rows_in_range
    from fastbias.optim.history import _normalize_rows, _unit_rows_if_extreme

    rng = np.random.default_rng(0)
    for t in range(120):
        K, d = int(rng.integers(1, 8)), int(rng.integers(1, 12))
        with np.errstate(over="ignore"):
            A = rng.standard_normal((K, d)) * 10.0 ** rng.integers(-310, 309, size=(K, 1))
        if t % 5 == 0:
            A[0] = 0.0
        if t % 7 == 0:
            A[-1, 0] = np.nan
        if t % 11 == 0:
            A[0, -1] = np.inf
        if t % 13 == 0:
            A[-1] = 5e-324
        e = rng.integers(-1000, 1000, K)
        want, want_e = _normalize_rows(A, e)
        got, got_e = normalize_rows(A, e)
        assert got.tobytes() == want.tobytes()
        np.testing.assert_array_equal(got_e, want_e)
        if rows_in_range(A):
            assert _unit_rows_if_extreme(A, e)[0] is A
    assert rows_in_range(np.ones((2, 3))) and not rows_in_range(np.full((1, 2), 1e30))
