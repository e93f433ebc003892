"""Depth-2 ReLU network on the softmax cross-entropy: kernel vs NumPy reference, gradient vs
finite differences, log-domain loss far past zero error, training, checkpoint/resume, input
errors."""

import math

import numpy as np
import pytest
from conftest import KERNEL_RTOL, ctrl_c_while_running

import fastbias as fb
from fastbias.exceptions import DivergenceError
from fastbias.kernels import STATUS_DIVERGED, STATUS_OK
from fastbias.kernels import _numba_softmax_net as K
from fastbias.kernels import _reference_softmax_net as R
from fastbias.optim.checkpoint import read_archive


def _blobs(n_per, d, C, seed, spread=0.6):
    """C Gaussian clusters around random centres (separable for small spread)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, d)) * 2.0
    X = np.vstack([c + spread * rng.standard_normal((n_per, d)) for c in centres])
    y = np.repeat(np.arange(C), n_per)
    return np.ascontiguousarray(X), y.astype(np.int64)


def _init(H, d, C, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((H, d)) * math.sqrt(2 / d), rng.standard_normal((C, H)) / H**0.5


def _close(a, b):
    scale = max(1.0, float(np.max(np.abs(b))))
    assert np.max(np.abs(a - b)) <= KERNEL_RTOL * scale


def _mean_ce(X, y, W1, W2):
    """The mean cross-entropy computed the textbook way (valid near the start)."""
    F = np.maximum(X @ W1.T, 0.0) @ W2.T
    F = F - F.max(axis=1, keepdims=True)
    logp = F - np.log(np.exp(F).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(y)), y]))


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_kernel_matches_reference_step_by_step(beta):
    X, y = _blobs(15, 6, 4, seed=1, spread=1.5)
    H = 9
    W1, W2 = _init(H, 6, 4, seed=2)
    sched = np.array([1, 2, 7, 30, 60], dtype=np.int64)
    states, recs, results = [], [], []
    for impl in (K, R):
        st = [W1.copy(), W2.copy(), np.zeros_like(W1), np.zeros_like(W2)]
        rec = np.zeros((len(sched), W1.size + W2.size))
        # two calls: the second continues where the first stopped
        a = impl.softmax_net_run(X, y, *st, 0.3, beta, 0, 25, sched[:3], rec[:3], 50.0)
        b = impl.softmax_net_run(X, y, *st, 0.3, beta, 25, 35, sched[3:], rec[3:], 50.0)
        states.append(st)
        recs.append(rec)
        results.append((a, b))
    assert results[0] == results[1] == ((STATUS_OK, 25), (STATUS_OK, 60))
    for a, b in zip(states[0], states[1], strict=True):
        _close(a, b)
    _close(recs[0], recs[1])
    assert np.all(recs[0][-1] == np.concatenate([states[0][0].ravel(), states[0][1].ravel()]))
    # some hidden units switched on/off during the run: the ReLU masks were exercised
    A0, A1 = X @ W1.T > 0, X @ states[0][0].T > 0
    assert np.any(A0 != A1) and 0 < A1.mean() < 1


def test_reference_gradient_matches_finite_differences():
    X, y = _blobs(6, 4, 3, seed=3, spread=1.0)
    W1, W2 = _init(5, 4, 3, seed=4)
    gW1, gW2, _ = R.softmax_net_step(X, y, W1, W2)
    assert np.min(np.abs(X @ W1.T)) > 1e-3  # no ReLU kink within the step h below
    h = 1e-6
    for W, g in ((W1, gW1), (W2, gW2)):
        num = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + h
            up = _mean_ce(X, y, W1, W2)
            W[idx] = old - h
            down = _mean_ce(X, y, W1, W2)
            W[idx] = old
            num[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-9)


def test_evaluate_matches_reference_and_textbook_loss():
    X, y = _blobs(10, 5, 3, seed=5, spread=2.0)
    W1, W2 = _init(8, 5, 3, seed=6)
    ll, err, margin = K.softmax_net_evaluate(X, y, W1, W2)
    ll_r, err_r, margin_r = R.softmax_net_evaluate(X, y, W1, W2)
    assert abs(ll - ll_r) <= 1e-13 and err == err_r and abs(margin - margin_r) <= 1e-13
    assert abs(math.exp(ll) - _mean_ce(X, y, W1, W2)) <= 1e-13
    F = np.maximum(X @ W1.T, 0.0) @ W2.T
    assert err == int(np.sum(np.argmax(F, axis=1) != y))


def test_log_domain_far_past_zero_error():
    """Outputs scaled so the margins are ~1e3: the textbook loss is 0 and its gradient 0/0 or
    0; the kernels keep log L exact (= log of the sum of e^{-margin} terms) and finite."""
    X, y = _blobs(10, 5, 3, seed=7, spread=0.2)
    run = fb.train_softmax_network(X, y, hidden=8, steps=300, lr=0.5, record=1)
    assert run.history["train_error"][-1] == 0
    s = 1e3 / run.history["min_margin"][-1]
    W1, W2 = run.W1 * math.sqrt(s), run.W2 * math.sqrt(s)  # degree 2: margins times s
    ll, err, margin = K.softmax_net_evaluate(X, y, W1, W2)
    assert err == 0 and margin == pytest.approx(1e3, rel=1e-9)
    F = np.maximum(X @ W1.T, 0.0) @ W2.T
    U = F - F[np.arange(len(y)), y][:, None]
    U[np.arange(len(y)), y] = -np.inf
    # log L = log mean_n log(1 + sum_k e^{U_nk}) = logsumexp(U) - log N to ~1e-300 relative
    top = U.max()
    expected = top + math.log(np.sum(np.exp(U - top))) - math.log(len(y))
    assert np.isfinite(ll) and ll == pytest.approx(expected, rel=1e-13)
    assert ll < -990
    assert R.softmax_net_evaluate(X, y, W1, W2)[0] == pytest.approx(ll, rel=1e-13)
    # one step there: finite, and (the gradient ~e^-1000) the parameters do not move
    st = [W1.copy(), W2.copy(), np.zeros_like(W1), np.zeros_like(W2)]
    code, _ = K.softmax_net_run(X, y, *st, 1.0, 0.0, 0, 1, np.zeros(0, np.int64),
                                np.zeros((0, W1.size + W2.size)), 10.0)  # fmt: skip
    assert code == STATUS_OK
    assert np.all(st[0] == W1) and np.all(st[1] == W2)
    G, top_r = R.loss_gradient(F, y)
    assert np.all(np.isfinite(G)) and top_r < -990


def test_trains_loss_falls_and_separates():
    X, y = _blobs(20, 6, 4, seed=8, spread=0.8)
    Xv, yv = _blobs(10, 6, 4, seed=8, spread=0.8)
    run = fb.train_softmax_network(X, y, hidden=16, steps=2000, validation=(Xv, yv), record=5)
    h = run.history
    assert run.status == "completed" and run.steps_done == 2000
    assert np.all(np.diff(h["train_log_loss"]) < 0)  # default lr: a descent method here
    assert h["train_loss"][-1] < 1e-2 * h["train_loss"][0]
    assert h["train_error"][-1] == 0 and h["min_margin"][-1] > 0
    assert h["last_layer_norm"][-1] > h["last_layer_norm"][0]
    for col in ("val_loss", "val_error", "normalized_margin", "theta_norm"):
        assert np.all(np.isfinite(h[col]))
    assert np.mean(run.predict(X) == y) == 1.0
    ll, _, _ = K.softmax_net_evaluate(X, y, run.W1, run.W2)
    assert h["train_log_loss"][-1] == ll
    np.testing.assert_allclose(h["theta_norm"], np.hypot(h["first_layer_norm"],
                               h["last_layer_norm"]))  # fmt: skip


def test_labels_any_coding_and_validation_subset():
    X, y = _blobs(8, 4, 3, seed=9)
    names = np.array(["cat", "dog", "eel"])[y]
    a = fb.train_softmax_network(X, names, hidden=5, steps=50, validation=(X[:5], names[:5]))
    b = fb.train_softmax_network(X, y + 10, hidden=5, steps=50)
    assert list(a.classes) == ["cat", "dog", "eel"]
    assert np.array_equal(a.W1, b.W1) and np.array_equal(a.W2, b.W2)
    assert set(a.predict(X)) <= set(a.classes)


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_checkpoint_resume_is_bit_identical(tmp_path, beta):
    X, y = _blobs(12, 5, 3, seed=10, spread=1.0)
    kw = dict(hidden=7, lr=0.2, momentum=beta, validation=(X[::2], y[::2]), record=4)
    whole = fb.train_softmax_network(X, y, steps=400, **kw)
    path = tmp_path / "run.ckpt"
    first = fb.train_softmax_network(X, y, steps=150, checkpoint=path, **kw)
    assert first.steps_done == 150
    rest = fb.resume_softmax_network(path, steps=250)
    assert rest.steps_done == 400
    assert np.array_equal(rest.W1, whole.W1) and np.array_equal(rest.W2, whole.W2)
    hw, hr = whole.history, rest.history
    common = np.intersect1d(hw["step"], hr["step"])
    assert common.size >= 8
    iw, ir = np.searchsorted(hw["step"], common), np.searchsorted(hr["step"], common)
    for col in ("train_log_loss", "val_error", "last_layer_norm"):
        assert np.array_equal(hw[col][iw], hr[col][ir])
    assert read_archive(path, "softmax-network")["done"] == 400  # (a safe checkpoint)


def test_ctrl_c_stops_between_chunks_and_the_checkpoint_finishes_the_run(tmp_path):
    """The shared driver loop (optim/driver.run_chunks): Ctrl-C keeps the finished steps and
    writes the checkpoint, from which the run continues exactly."""
    X, y = _blobs(8, 4, 3, seed=14, spread=1.0)
    kw = dict(hidden=5, lr=0.1, record=3)
    path = tmp_path / "long.ckpt"
    total = 10**9
    with ctrl_c_while_running():
        run = fb.train_softmax_network(X, y, steps=total, chunk_seconds=0.02, checkpoint=path, **kw)
    assert run.status == "interrupted" and 0 < run.steps_done < total
    assert read_archive(path, "softmax-network")["done"] == run.steps_done
    resumed = fb.resume_softmax_network(path, steps=300)
    straight = fb.train_softmax_network(X, y, steps=run.steps_done + 300, **kw)
    assert resumed.status == "completed" and resumed.steps_done == straight.steps_done
    assert np.array_equal(resumed.W1, straight.W1) and np.array_equal(resumed.W2, straight.W2)


def test_checkpoint_path_is_checked(tmp_path):
    X, y = _blobs(4, 4, 3, seed=15)
    with pytest.raises(ValueError, match="is a directory"):
        fb.train_softmax_network(X, y, hidden=4, steps=5, checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fb.train_softmax_network(X, y, hidden=4, steps=5, checkpoint=tmp_path / "no" / "x.ckpt")
    with pytest.raises(ValueError, match="checkpoint_every"):
        fb.train_softmax_network(
            X, y, hidden=4, steps=5, checkpoint=tmp_path / "x.ckpt", checkpoint_every=0
        )


def test_resume_rejects_other_checkpoints(tmp_path):
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    path = tmp_path / "lin.ckpt"
    fb.train(X, [1, -1], steps=5, checkpoint=path)
    with pytest.raises(ValueError, match="softmax-network"):
        fb.resume_softmax_network(path)


def test_divergence_is_reported():
    X, y = _blobs(10, 4, 3, seed=11, spread=1.0)
    with pytest.raises(DivergenceError, match="lr=1e\\+06"):
        fb.train_softmax_network(X * 100, y, hidden=6, steps=20, lr=1e6)
    st = [*_init(6, 4, 3, 0)]
    st += [np.zeros_like(st[0]), np.zeros_like(st[1])]
    code, step = K.softmax_net_run(X * 100, y, *st, 1e6, 0.0, 0, 20, np.zeros(0, np.int64),
                                   np.zeros((0, 42)), 1e3)  # fmt: skip
    assert code == STATUS_DIVERGED and 0 < step < 20
    assert all(np.all(np.isfinite(a)) for a in st)


def test_dead_network_is_an_error_at_the_start_and_a_warning_at_the_end():
    X, y = _blobs(10, 4, 3, seed=12)
    Xp = np.abs(X)
    W1 = -np.ones((5, 4))  # every pre-activation negative: no ReLU ever fires
    with pytest.raises(ValueError, match="inactive"):
        fb.train_softmax_network(Xp, y, hidden=5, steps=3, init=(W1, np.ones((3, 5))))
    with pytest.warns(UserWarning, match="inactive"):  # lr = 10 kills every unit in a step
        run = fb.train_softmax_network(Xp, y, hidden=5, steps=20, lr=10.0, seed=0)
    assert run.history["train_loss"][-1] == pytest.approx(math.log(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden=0), "hidden"),
        (dict(steps=0), "steps"),
        (dict(lr=-1.0), "lr"),
        (dict(momentum=1.0), "momentum"),
        (dict(momentum="x"), "momentum"),
        (dict(init="xavier"), "init"),
        (dict(init=(np.zeros((3, 4)), np.zeros((3, 3)))), "shapes"),
        (dict(init=(np.full((4, 4), np.nan), np.zeros((3, 4)))), "NaN"),
        (dict(validation=np.zeros((3, 4))), "pair"),
        (dict(validation=(np.zeros((3, 5)), [0, 1, 2])), "features"),
        (dict(validation=(np.zeros((2, 4)), [0, 7])), "not a training class"),
        (dict(record=[0, 5]), "record"),
    ],
)
def test_bad_input(kwargs, match):
    X, y = _blobs(4, 4, 3, seed=13)
    kw = dict(hidden=4, steps=5) | kwargs
    with pytest.raises(ValueError, match=match):
        fb.train_softmax_network(X, y, **kw)


def test_bad_labels():
    X = np.ones((4, 2))
    with pytest.raises(ValueError, match="2 distinct"):
        fb.train_softmax_network(X, [1, 1, 1, 1])
    with pytest.raises(ValueError, match="one label per row"):
        fb.train_softmax_network(X, [0, 1, 0])
    with pytest.raises(ValueError, match="NaN"):
        fb.train_softmax_network(X, [0.0, 1.0, np.nan, 0.0])


def test_digits_split_is_seeded_and_names_the_extra(monkeypatch):
    from fastbias.experiments.soudry2018_table1 import digits_split

    Xt, yt, Xv, yv = digits_split(seed=0)
    assert Xt.shape == (1198, 64) and Xv.shape == (599, 64)
    assert set(yt) == set(yv) == set(range(10))
    assert Xt.min() == 0.0 and Xt.max() == 1.0
    again = digits_split(seed=0)
    assert np.array_equal(again[0], Xt) and np.array_equal(again[3], yv)
    assert not np.array_equal(digits_split(seed=1)[3], yv)
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"fastbias\[reproduce\]"):
        digits_split()
