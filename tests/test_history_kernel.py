"""The compiled history (kernels/_numba_history.py) against its NumPy specification
(optim.history.build_history_numpy): the same columns, in the same order, with the same
overflow notes, equal to round-off; on runs of every model and loss and on rows built to
reach the edges (zero rows, rows past float64, huge and tiny margins)."""

import math

import numpy as np
import pytest
from conftest import KERNEL_RTOL, random_separable

import fastbias as fb
from fastbias.models import (
    Convolutional,
    Diagonal,
    FullyConnected,
    Linear,
    LowRank,
    Tensor,
)
from fastbias.optim.driver import drive
from fastbias.optim.gd import train_spec
from fastbias.optim.history import build_history, build_history_numpy

# The columns whose values near 0 carry absolute, not relative, round-off: differences of
# unit vectors (gaps) and logs of numbers near 1.
_ABSOLUTE = {"angle_gap": 1e-15, "direction_distance": 1e-15, "margin_gap": 1e-14}


def _same(got, want):
    assert list(got.columns) == list(want.columns)
    assert got.overflowed == want.overflowed
    for name in want.columns:
        atol = _ABSOLUTE.get(name, 0.0)
        if name.startswith("log_"):
            atol = 1e-14 * max(1.0, float(np.max(np.abs(want[name]))))
        np.testing.assert_allclose(got[name], want[name], rtol=KERNEL_RTOL, atol=atol, err_msg=name)
    np.testing.assert_allclose(got.directions, want.directions, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(got.scaled_iterates, want.scaled_iterates)
    np.testing.assert_array_equal(got.iterate_scale, want.iterate_scale)
    assert ("iterates" in got.overflowed) == ("iterates" in want.overflowed)
    if "iterates" not in want.overflowed:
        np.testing.assert_array_equal(got.iterates, want.iterates)


def _both(*args, **kw):
    return build_history(*args, **kw), build_history_numpy(*args, **kw)


MODELS = [Linear(), FullyConnected([4]), Diagonal(3), Convolutional(2), Tensor.diagonal(6, 2),
          LowRank(1, (2, 3))]  # fmt: skip


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("model", MODELS, ids=repr)
@pytest.mark.parametrize("loss", ["exp", "logistic", "squared"])
def test_runs_match_the_numpy_history(model, loss):
    X, y = random_separable(30, 6, seed=1)
    if loss == "squared":
        y = X @ np.linspace(-1, 1, 6) + 0.1
    lr = None if isinstance(model, Linear) else 0.01
    spec = train_spec(X, y, model=model, loss=loss, steps=300, lr=lr, record=5)
    state, _ = drive(spec)
    k = state.k_rec
    args = (spec.schedule[:k], state.rec[:k], spec.model, spec.d, spec.Z, spec.targets,
            spec.loss, spec.reference_vec, spec.w_tilde, {})  # fmt: skip
    got, want = _both(*args, theta_scale=state.rec_scale[:k])
    if isinstance(model, (Linear, FullyConnected)) and loss != "squared":
        assert "angle_gap" in want  # the gap columns are compared too
    _same(got, want)


def _rows(d, K, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((K, d))


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_linear_rows_at_the_edges(loss):
    """A zero row, rows whose margins are tiny or huge (the logistic branch switches at a
    smallest margin of 40), and rows scaled past float64 by their exponents."""
    X, y = random_separable(20, 4, seed=2)
    Z = X * y[:, None]
    sol = fb.max_margin(X, y)
    w = sol.coef
    rows = np.array([np.zeros(4), 1e-12 * w, w, 30 * w, 1e3 * w, w + 0.1, -w])
    steps = np.arange(1, len(rows) + 1) * 10
    for scale in (np.zeros(len(rows), np.int64), np.array([0, 0, 3, 0, 900, 1100, 2000])):
        got, want = _both(steps, rows, Linear(), 4, Z, np.ones(20), loss, w,
                          None, {}, theta_scale=scale)  # fmt: skip
        _same(got, want)
        assert bool(want.overflowed) == bool(scale.any())  # past float64: columns left out
    wt = 0.3 * np.ones(4)
    _same(*_both(steps, rows, Linear(), 4, Z, np.ones(20), loss, w, wt, {}))


def test_regression_rows_at_the_edges():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((15, 5))
    t = rng.standard_normal(15)
    ref = np.linalg.lstsq(X, t, rcond=None)[0]
    rows = np.array([np.zeros(5), ref, ref + 1e-9, 1e5 * ref])
    steps = np.array([1, 2, 3, 4])
    for scale in (np.zeros(4, np.int64), np.array([0, 0, 50, 1200])):
        for r in (None, ref):
            _same(*_both(steps, rows, Linear(), 5, X, t, "squared", r, None, {},
                         theta_scale=scale))  # fmt: skip


@pytest.mark.parametrize("model", [FullyConnected([3]), Diagonal(2), LowRank(1, (2, 2))], ids=repr)
@pytest.mark.parametrize("loss", ["exp", "squared"])
def test_deep_rows_at_the_edges(model, loss):
    """Parameter rows far from unit scale (renormalized inside), exponents past float64 (the
    magnitudes are left out with the same notes), a zero row."""
    X, y = random_separable(12, 4, seed=4)
    Z = X * y[:, None] if loss != "squared" else X
    targets = np.ones(12) if loss != "squared" else X[:, 0]
    n = model.n_params(4)
    rows = _rows(n, 5, seed=5)
    rows[1] *= 1e200
    rows[2] *= 1e-200
    rows[3] = 0.0
    steps = np.arange(1, 6)
    for scale in (np.zeros(5, np.int64), np.array([0, 0, 10, 0, 800])):
        got, want = _both(steps, rows, model, 4, Z, targets, loss, None, None, {},
                          theta_scale=scale)  # fmt: skip
        _same(got, want)
        assert want.overflowed  # 1e200 ** L: the magnitudes are left out


def test_longdouble_rows_take_the_numpy_path():
    X, y = random_separable(10, 3, seed=6)
    Z = X * y[:, None]
    rows = _rows(3, 4, seed=7).astype(np.longdouble)
    h = build_history(np.arange(1, 5), rows, Linear(), 3, Z, np.ones(10), "exp", None, None, {})
    want = build_history_numpy(
        np.arange(1, 5), rows, Linear(), 3, Z, np.ones(10), "exp", None, None, {}
    )
    for name in want.columns:
        np.testing.assert_array_equal(h[name], want[name])
    assert h["log_loss"][0] == pytest.approx(
        math.log(np.sum(np.exp(-(Z @ rows[0].astype(float))))), rel=1e-14
    )
