"""The GD engine: theory checks (Soudry et al. 2018), bad input, interruption."""

import io
import sys
import warnings

import numpy as np
import pytest
from conftest import ctrl_c_while_running, random_separable

import fastbias as fb
from fastbias.experiments.soudry2018 import paper_lr


@pytest.fixture(scope="module")
def fig31_run():
    X, y = fb.datasets.soudry2018()
    return fb.train(X, y, loss="exp", steps=10**6, lr=paper_lr(X), reference="svm")


def test_figure31_converges_to_max_margin_direction(fig31_run):
    h = fig31_run.history
    # Theorem 3: direction -> w_hat/||w_hat|| = (1, 1)/sqrt(2) (w_hat = (0.5, 0.5), eq. 2.4).
    np.testing.assert_allclose(fig31_run.reference.coef, [0.5, 0.5], atol=1e-12)
    u = fig31_run.coef / np.linalg.norm(fig31_run.coef)
    assert np.linalg.norm(u - np.array([1, 1]) / np.sqrt(2)) < 0.01
    assert h["angle_gap"][-1] < 5e-5
    # Gaps decrease monotonically over the recorded run (Figure 3.1 D, E).
    assert np.all(np.diff(h["angle_gap"]) < 0)
    assert np.all(np.diff(h["margin_gap"]) < 0)
    assert np.all(np.diff(h["log_loss"]) < 0)
    # normalized margin -> sqrt(2) from below
    assert np.all(h["normalized_margin"] < np.sqrt(2))
    assert h["normalized_margin"][-1] > np.sqrt(2) - 0.01
    for name, col in h.columns.items():
        assert np.all(np.isfinite(col)), name


def test_figure31_rates(fig31_run):
    rates = fig31_run.rates()
    # eq. 3.4: loss ~ 1/t
    assert rates["loss"].exponent == pytest.approx(1.0, abs=0.05)
    # eq. 2.3: ||w(t)|| ~ ||w_hat|| log t
    assert rates["norm"].exponent == pytest.approx(np.sqrt(0.5), rel=0.05)
    # eqs. 3.1-3.3 are upper bounds O(1/log t), O(1/log^2 t): gap * log^b t stays bounded
    h = fig31_run.history
    sel = h["step"] >= 1000  # after the transient of the first large step
    logt = np.log(h["step"][sel].astype(float))
    assert np.all(np.diff(h["angle_gap"][sel] * logt**2) < 0)
    assert np.all(np.diff(h["direction_distance"][sel] * logt) < 0)
    # Theorem 4: rho(t) -> w_tilde, so the residual r(t) shrinks
    r4 = h["theorem4_residual_norm"]
    assert r4[-1] < 0.1 and np.all(np.diff(r4[h["step"] >= 1000]) < 0)


def test_appendix_b_tight_rates():
    """Soudry Appendix B: one point x = (1, 0), w2(0) > 0 makes the rates tight."""
    X = np.array([[1.0, 0.0]])
    run = fb.train(X, None, steps=10**7, lr=1.0, init=[0.0, 1.0])
    rates = run.rates()
    assert rates["loss"].exponent == pytest.approx(1.0, abs=0.02)
    assert rates["direction_distance"].exponent == pytest.approx(1.0, abs=0.05)
    assert rates["angle_gap"].exponent == pytest.approx(2.0, abs=0.1)
    assert rates["norm"].exponent == pytest.approx(1.0, rel=0.02)
    assert run.coef[1] == 1.0  # orthogonal to the data: never changes


def test_appendix_b_closed_form_small_steps():
    """GD with small eta tracks the flow w1(t) = log(t + exp(w1(0))) at time eta * k."""
    eta, k = 0.01, 100_000
    run = fb.train(np.array([[1.0, 0.0]]), None, steps=k, lr=eta, init=[0.5, 2.0], record=[1000, k])
    w1 = run.history.iterates[:, 0]
    flow = np.log(eta * run.history["step"] + np.exp(0.5))
    np.testing.assert_allclose(w1, flow, atol=eta)


def test_extended_precision_matches_float64():
    pytest.importorskip("fastbias._cext")
    X, y = fb.datasets.soudry2018()
    lr = paper_lr(X)
    a = fb.train(X, y, steps=1000, lr=lr)
    b = fb.train(X, y, steps=1000, lr=lr, precision="extended")
    assert b.history.iterates.dtype == np.longdouble
    np.testing.assert_allclose(np.asarray(b.coef, dtype=float), a.coef, rtol=1e-12)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
@pytest.mark.parametrize("rule", ["fixed", "normalized", "loss-scaled"])
def test_every_loss_and_rule_runs_and_separates(loss, rule):
    X, y = random_separable(60, 5, seed=7, margin=0.2)
    run = fb.train(X, y, loss=loss, step_rule=rule, steps=20_000)
    assert run.history["min_margin"][-1] > 0
    assert run.history["angle_gap"][-1] < run.history["angle_gap"][0]


def test_label_codings_are_equivalent():
    X, y = random_separable(30, 3, seed=2)
    ref = fb.train(X, y, steps=500).coef
    np.testing.assert_array_equal(fb.train(X, (y > 0).astype(int), steps=500).coef, ref)
    np.testing.assert_array_equal(fb.train(X, np.where(y > 0, "b", "a"), steps=500).coef, ref)
    folded = fb.train(X * y[:, None], None, steps=500).coef
    np.testing.assert_allclose(folded, ref, rtol=1e-14)


def test_record_schedule_and_csv(tmp_path):
    X, y = fb.datasets.soudry2018()
    run = fb.train(X, y, steps=1000, record=[3, 7, 500])
    np.testing.assert_array_equal(run.history["step"], [3, 7, 500, 1000])
    path = run.history.to_csv(tmp_path / "h.csv")
    data = np.genfromtxt(path, delimiter=",", names=True)
    np.testing.assert_allclose(data["angle_gap"], run.history["angle_gap"], rtol=1e-15)
    default = fb.train(X, y, steps=1000)
    # round(10**(k/10)), k = 0..30: 31 grid points, 3 of them repeated at small t (1, 1, 2, 2, 3, 3)
    assert len(default.history) == 28
    assert default.history["step"][-1] == 1000
    with pytest.raises(ValueError, match="record steps must lie in"):
        fb.train(X, y, steps=10, record=[0, 5])


def test_progress_bar(monkeypatch):
    class TTY(io.StringIO):
        def isatty(self):
            return True

    err = TTY()
    monkeypatch.setattr(sys, "stderr", err)  # tqdm draws on terminals only
    X, y = fb.datasets.soudry2018()
    fb.train(X, y, steps=1000, progress=True)
    assert "100%" in err.getvalue()


def test_ctrl_c_keeps_finished_work():
    X, y = fb.datasets.soudry2018()
    with ctrl_c_while_running():
        run = fb.train(X, y, steps=10**10, lr=0.05, chunk_seconds=0.05)
    assert run.status == "interrupted"
    assert 0 < run.steps_done < 10**10
    assert run.history["step"][-1] == run.steps_done
    # Nothing finished was lost: the same number of steps from scratch gives the same iterate.
    again = fb.train(X, y, steps=run.steps_done, lr=0.05)
    np.testing.assert_array_equal(again.coef, run.coef)


def test_nonseparable_data():
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    y = np.array([1, 1, -1, -1])  # XOR-like with no bias: not separable
    with pytest.raises(fb.NotSeparableError):
        fb.train(X, y, steps=10, reference="svm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = fb.train(X, y, loss="logistic", steps=1000)
    assert any("not linearly separable" in str(w.message) for w in caught)
    assert "angle_gap" not in run.history and np.all(np.isfinite(run.coef))


# ---------------------------------------------------------------- bad input

GOOD_X, GOOD_Y = fb.datasets.soudry2018()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"X": np.array([[np.nan, 1.0]] * 2), "y": [1, -1]}, "X contains NaN or inf"),
        ({"X": np.array([[np.inf, 1.0]] * 2), "y": [1, -1]}, "X contains NaN or inf"),
        ({"X": GOOD_X, "y": np.r_[np.nan, GOOD_Y[1:]]}, "y contains NaN or inf"),
        ({"X": np.ones(5), "y": None}, "X must be 2-D"),
        ({"X": np.ones((2, 2, 2)), "y": None}, "X must be 2-D"),
        ({"X": np.ones((0, 3)), "y": None}, "X is empty"),
        ({"X": GOOD_X, "y": GOOD_Y[:-1]}, "X has 16 rows but y has 15"),
        ({"X": GOOD_X, "y": np.arange(16) % 3}, "3 distinct labels"),
        ({"X": GOOD_X, "y": GOOD_Y, "lr": 0.0}, "lr must be > 0"),
        ({"X": GOOD_X, "y": GOOD_Y, "lr": -0.1}, "lr must be > 0"),
        ({"X": GOOD_X, "y": GOOD_Y, "lr": np.nan}, "lr must be > 0"),
        ({"X": GOOD_X, "y": GOOD_Y, "steps": 0}, "steps must be an integer >= 1"),
        ({"X": GOOD_X, "y": GOOD_Y, "steps": 2.5}, "steps must be an integer >= 1"),
        ({"X": GOOD_X, "y": GOOD_Y, "init": [1.0]}, "init must be a vector of length 2"),
        ({"X": GOOD_X, "y": GOOD_Y, "init": [np.nan, 0]}, "init contains NaN"),
        ({"X": GOOD_X, "y": GOOD_Y, "loss": "hinge"}, "Unknown loss 'hinge'"),
        ({"X": GOOD_X, "y": GOOD_Y, "model": "cnn"}, "Unknown model 'cnn'"),
        ({"X": GOOD_X, "y": GOOD_Y, "precision": "half"}, "Unknown precision 'half'"),
        ({"X": GOOD_X, "y": GOOD_Y, "step_rule": "adam"}, "Unknown step_rule 'adam'"),
        ({"X": np.zeros((3, 2)), "y": None, "reference": None}, "every sample is zero"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    kwargs = dict(kwargs)
    X, y = kwargs.pop("X"), kwargs.pop("y")
    with pytest.raises(ValueError, match=match):
        fb.train(X, y, **kwargs)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_divergent_step_size_is_reported(loss):
    X, y = random_separable(40, 3, seed=4)
    lr = 1e4 if loss == "exp" else 1e12
    with pytest.raises(fb.DivergenceError) as info:
        fb.train(X * 10, y, loss=loss, steps=10**5, lr=lr, init=-np.ones(3))
    err = info.value
    assert "blew up at step" in str(err) or "non-finite" in str(err)
    assert 0 <= err.step < 10**5
    assert 0 < err.suggested_lr < lr
    # the suggested step size runs
    fb.train(X * 10, y, loss=loss, steps=1000, lr=err.suggested_lr, init=-np.ones(3))


def test_memory_does_not_grow_with_steps():
    """Only log-spaced checkpoints are stored: 10^6 steps allocate no more than 10^3 steps
    beyond the extra checkpoint rows (tracemalloc sees NumPy's allocations)."""
    import tracemalloc

    from fastbias.models import Diagonal

    X, y = random_separable(50, 20, seed=8)
    peaks = []
    for steps in (10**3, 10**6):
        fb.train(X, y, model=Diagonal(2), steps=10, lr=1e-3)  # compile outside the trace
        tracemalloc.start()
        fb.train(X, y, model=Diagonal(2), steps=steps, lr=1e-3, init="yun", reference=None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    extra_rows = 31 * (2 * 20 + 20) * 8 * 4  # 30 more checkpoints, theta + beta, a few copies
    assert peaks[1] < peaks[0] + extra_rows + 64 * 1024
