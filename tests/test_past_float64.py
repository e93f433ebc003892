"""Issue 11.1: what a run reports stays finite and accurate past float64.

For every model kind a loss-scaled run is taken past ``theta = 2**2000 theta_s``; its history
has only finite columns, the magnitudes that overflow are named (with the column to read
instead), and ``run.direction`` matches an independent NumPy loop that carries the same power
of two scale. A fixed-step linear run pushed to margins past 1e4 reports its exact log-loss
and says that its iterate is frozen.
"""

import math
import warnings

import numpy as np
import pytest

import fastbias as fb
from fastbias.kernels import _reference
from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Network, Tensor
from fastbias.optim.backtracking import GROWTH
from fastbias.optim.history import LOG_FLOOR

pytestmark = pytest.mark.filterwarnings("ignore:the initialization does not satisfy")

N, D = 10, 6


def _data(name="gaussian"):
    if name == "three_points":  # backtracking never rejects a step here: eta grows forever
        X = np.array([[1.0, 0.2], [0.8, -0.1], [-1.0, 0.1]])
        return X, np.array([1.0, 1.0, -1.0])
    return fb.datasets.separable_gaussian(N, D, margin=0.05, seed=3)


def _scaled_reference(f, theta, depth, lr, steps, backtrack, e=0):
    """Exp-loss loss-scaled GD (with backtracking growth when asked) on ``theta = 2**e *
    theta_s`` in NumPy. ``f(theta_s) -> (s, vjp)``: the margins of ``theta_s`` and ``q ->
    J(theta_s)^T Z^T q``. ``eta = 2**ee * em`` too (it outgrows float64 for the linear
    model). Returns ``(theta_s, e)``."""
    em, ee = lr, 0
    prev = None
    for _ in range(steps):
        s, vjp = f(theta)
        s_min = float(s.min())
        with np.errstate(over="ignore"):
            shift = np.ldexp(s - s_min, e * depth)
            m_min = float(np.ldexp(s_min, e * depth))
        q = np.exp(-shift)
        lsum = float(q.sum())
        log_loss = -m_min + math.log(lsum)
        if backtrack and prev is not None and log_loss > prev[2]:
            theta, e = prev[0].copy(), prev[1]
            em *= 0.5
            continue
        prev = (theta.copy(), e, log_loss)
        theta = theta + math.ldexp(em / lsum, e * (depth - 2) + ee) * vjp(q)
        nrm = float(np.linalg.norm(theta))
        if nrm > 2.0**20:
            theta, e = theta * 2.0**-20, e + 20
        if backtrack:
            em *= GROWTH
            mant, ex = math.frexp(em)
            em, ee = mant, ee + ex
    return theta, e


def _maps(model, X, y):
    d = X.shape[1]
    if isinstance(model, Network) and not model.linear_predictor:

        def f(theta):
            J = model.gradient(theta, X)
            return y * model.forward(theta, X), lambda q: J.T @ (y * q)

        return f
    Z = X * y[:, None]

    def f(theta):
        params = model.unflatten(theta, d)
        return Z @ model.predictor(params), lambda q: model.flatten(model.vjp(params, Z.T @ q))

    return f


CASES = {
    # model, lr, steps, step rule: each run passes theta_scale 2000 (||theta|| ~ 2**2000)
    "linear": (Linear(), 0.05, 17000, "loss-scaled-backtracking"),
    "diag": (Diagonal(2), 0.3, 18000, "loss-scaled"),
    "fc": (FullyConnected([3]), 0.3, 11000, "loss-scaled"),
    "conv": (Convolutional(2), 0.15, 16000, "loss-scaled"),
    "conv_k3": (Convolutional(2, kernel_sizes=[3]), 0.2, 12500, "loss-scaled"),
    "tensor": (Tensor.diagonal(D, 2), 0.3, 18000, "loss-scaled"),
    "net_linear": (Network.fully_connected(D, [3], activation="linear"), 0.2, 14500,
                   "loss-scaled"),
    "net_relu": (Network.fully_connected(D, [12], activation="relu"), 0.15, 28000,
                 "loss-scaled"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_loss_scaled_runs_past_2_to_the_2000_report_finite_numbers(name, tmp_path):
    model, lr, steps, rule = CASES[name]
    X, y = _data("three_points" if name == "linear" else "gaussian")
    d = X.shape[1]
    init = None if isinstance(model, Linear) else "gaussian"
    ckpt = tmp_path / "run.ckpt"
    run = fb.train(X, y, model=model, steps=steps, lr=lr, step_rule=rule, init=init,
                   reference=None, checkpoint=ckpt)  # fmt: skip
    assert run.status == "completed"
    assert run.theta_scale > 2000, "the run must go past theta = 2**2000 theta_s"
    h = run.history
    for col, values in h.columns.items():
        assert np.all(np.isfinite(values)), col
    # what overflows is named, with the column to read instead
    for col in ("log_loss", "min_margin", "iterates"):
        assert col in h.overflowed
    with pytest.raises(OverflowError, match="log_min_margin"):
        h["min_margin"]
    with pytest.raises(OverflowError, match="directions"):
        _ = h.iterates
    assert np.all(np.isfinite(h.directions)) and np.all(np.isfinite(h["log_min_margin"]))
    if not isinstance(model, Linear):
        assert h["log_theta_norm"][-1] > 2000 * math.log(2)
    assert h["loss"][-1] == 0.0  # exp(-huge) underflows; log(-log L) is log_min_margin
    linear_predictor = getattr(model, "linear_predictor", True)
    if linear_predictor:
        with pytest.raises(OverflowError, match="run.direction"):
            _ = run.coef
        assert np.isclose(np.linalg.norm(run.direction), 1.0)
        assert run.log_coef_norm > 2000 * math.log(2)
        assert h["log_norm"][-1] == pytest.approx(run.log_coef_norm, rel=1e-14)
        np.testing.assert_allclose(h.directions[-1], run.direction, atol=1e-15)
    with pytest.raises(OverflowError, match="scaled_params"):
        _ = run.params
    rates = run.rates()  # fits from the log columns; nothing overflows
    assert "theta_norm" in rates.fits or isinstance(model, Linear)

    # The scaled parameters against an independent NumPy loop with the same arithmetic:
    # from the start for the (cheap) linear model, whose eta is carried with a scale too;
    # otherwise from the scaled state past 2**2000, continued by resume and by NumPy.
    backtrack = rule.endswith("backtracking")
    if backtrack:
        start = model.flatten(model.init_params(d, init, 1.0, 0))
        start_e, more, later = 0, steps, run
    else:
        more = 300
        start, start_e = model.flatten(run.scaled_params), run.theta_scale
        later = fb.resume(ckpt, steps=more)
    ref_s, ref_e = _scaled_reference(_maps(model, X, y), start, model.depth, lr, more, backtrack,
                                     e=start_e)  # fmt: skip
    got_s = model.flatten(later.scaled_params)
    assert abs(later.theta_scale - ref_e) <= 40  # the same up to the rescaling policy
    u_got, u_ref = got_s / np.linalg.norm(got_s), ref_s / np.linalg.norm(ref_s)
    assert np.linalg.norm(u_got - u_ref) < 1e-9
    if linear_predictor:
        beta_ref = model.predictor(model.unflatten(ref_s, d))
        assert np.linalg.norm(later.direction - beta_ref / np.linalg.norm(beta_ref)) < 1e-9


def test_issue_case_convolutional_loss_scaled_long_run():
    """The issue's report: Convolutional(2), exp loss, loss-scaled lr=0.01 on a random
    separable 12 x 8 problem; the run ends near exp(18000) with finite gaps, and its direction
    is that of the DFT-L1 max-margin solution (Gunasekar Theorem 2)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 8))
    y = np.sign(X @ rng.standard_normal(8))
    sol = fb.max_margin(X, y, norm="dft-l1")
    run = fb.train(X, y, model=Convolutional(2), step_rule="loss-scaled", lr=0.01,
                   steps=10**5, reference=sol.coef)  # fmt: skip
    h = run.history
    assert run.theta_scale > 1000
    for col, values in h.columns.items():
        assert np.all(np.isfinite(values)), col
    for col in ("angle_gap", "direction_distance", "margin_gap", "normalized_margin"):
        assert col in h
    assert float(run.direction @ sol.direction) > 0.98
    assert "fitted" in str(run.rates())
    pred = fb.predicted_limit(run, X, y)  # the run's model and loss: DFT-L1 (Theorem 2)
    assert "DFT-L1" in pred.theorem
    assert pred.angle_gap(run) == pytest.approx(
        1 - float(run.direction @ pred.direction), abs=1e-12
    )
    assert pred.angle_gap(run) < 0.02


def test_cli_prints_and_saves_a_run_past_float64(tmp_path, capsys):
    """The command line's tables, final report and summary for a run whose coef overflows."""
    import json

    from fastbias.cli import main

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 8))
    y = np.sign(X @ rng.standard_normal(8))
    np.savez(tmp_path / "d.npz", X=X, y=y)
    argv = ["run", str(tmp_path / "d.npz"), "--model", "conv:2", "--step-rule", "loss-scaled"]
    argv += ["--lr", "0.01", "--steps", "1e5", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "w = exp(" in out and "log(-log-loss)" in out and "inf" not in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "coef" not in summary and summary["log_coef_norm"] > 710
    assert np.isclose(np.linalg.norm(summary["direction"]), 1.0)
    header = (tmp_path / "out" / "history.csv").read_text().splitlines()[0]
    assert "u_0" in header and "w_0" not in header  # directions, the iterates overflow


def test_fixed_steps_to_margins_past_1e4_report_the_exact_log_loss_and_a_frozen_iterate():
    """lr = 1e4: the first steps push the margins past 1e4, where exp(-margin) underflows
    and fixed steps are exactly zero. The log-loss is reported exactly, the status says the
    iterate is frozen, and the direction is that of the NumPy reference loop."""
    X, y = fb.datasets.soudry2018()
    Z = X * y[:, None]
    lr, steps = 1e3, 200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = fb.train(X, y, steps=steps, lr=lr, reference="auto")
    assert run.status == "loss underflow: iterate frozen"
    assert any("stopped moving" in str(w.message) for w in caught)
    h = run.history
    for col, values in h.columns.items():
        assert np.all(np.isfinite(values)), col
    assert h["min_margin"][-1] > 1e4 and h["loss"][-1] == 0.0
    m = Z @ run.coef
    expected = -m.min() + math.log(np.sum(np.exp(-(m - m.min()))))
    assert h["log_loss"][-1] == pytest.approx(expected, rel=1e-14)
    w = np.zeros(2)
    _reference.gd_linear(Z, w, lr, 0, 0, 0, steps, np.array([steps]), np.zeros((1, 2)), -1e300)
    np.testing.assert_allclose(run.direction, w / np.linalg.norm(w), rtol=1e-12)
    assert run.log_coef_norm == pytest.approx(math.log(np.linalg.norm(w)), rel=1e-14)


def test_zero_predictor_and_unseparated_rows_stay_finite():
    """Symmetric non-separable data keep beta = 0: the normalized margin is 0 (not NaN), the
    log norm and log min margin hold LOG_FLOOR, and there is no gap against a reference."""
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    y = np.array([1, 1, -1, -1])
    with pytest.warns(UserWarning, match="not linearly separable"):
        run = fb.train(X, y, steps=100)
    h = run.history
    for col, values in h.columns.items():
        assert np.all(np.isfinite(values)), col
    assert np.all(h["normalized_margin"] == 0.0)
    assert np.all(h["log_norm"] == LOG_FLOOR) and np.all(h["log_min_margin"] == LOG_FLOOR)
    np.testing.assert_array_equal(run.coef, 0.0)
    np.testing.assert_array_equal(run.direction, 0.0)
    assert run.log_coef_norm == LOG_FLOOR


def test_history_log_loss_is_exact_where_the_loss_underflows():
    """log L = -m_min + log sum exp(-(m_n - m_min)) against a direct evaluation."""
    from fastbias.losses import get_loss
    from fastbias.optim.history import _log_loss_rows

    s = np.array([[0.75, 0.5, 0.5 + 2.0**-40]])
    for e in (0, 20, 3000):
        got = _log_loss_rows(s, np.array([e]), get_loss("exp"))[0]
        if e == 0:
            assert got == pytest.approx(math.log(np.sum(np.exp(-s))), rel=1e-15)
        elif e == 20:
            m = s[0] * 2.0**20
            assert got == pytest.approx(-m.min() + math.log(1 + math.exp(-(2.0**-20))), rel=1e-15)
        else:
            assert got == -np.inf  # -log L does not fit: the column is dropped, not -inf


def test_history_of_unscaled_huge_parameters_stays_finite():
    """Rows that no runner rescaled (here 1e200 and 1e-200 times a parameter vector) are
    renormalized by powers of two inside the history: the scale-free columns equal those of
    the unit-scale row and nothing is inf or NaN."""
    from fastbias.optim.history import build_history, build_network_history

    X, y = fb.datasets.soudry2018()
    Z = X * y[:, None]
    m = FullyConnected([3])
    th = m.flatten(m.init_params(2, "gaussian", 1.0, 0))
    rows = np.array([th, th * 1e200, th * 1e-200])
    h = build_history(np.array([1, 2, 3]), rows, m, 2, Z, np.zeros(16), "exp", None, None, {})
    for col, values in h.columns.items():
        assert np.all(np.isfinite(values)), col
    for col in ("normalized_margin", "normalized_margin_theta"):
        np.testing.assert_allclose(h[col], h[col][0], rtol=1e-14)
    np.testing.assert_allclose(h["log_theta_norm"][1:] - h["log_theta_norm"][0],
                               [math.log(1e200), math.log(1e-200)], rtol=1e-12)  # fmt: skip
    net = Network.fully_connected(2, [3], activation="relu")
    t = net.flatten(net.init_params(2))
    hn = build_network_history(np.array([1, 2]), np.array([t, t * 1e200]), net, X, y, "exp", {})
    for col, values in hn.columns.items():
        assert np.all(np.isfinite(values)), col
    assert hn["normalized_margin_theta"][1] == pytest.approx(hn["normalized_margin_theta"][0])
