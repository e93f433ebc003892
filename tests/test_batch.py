"""train_batch: many runs in one call, identical to running them one by one."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.models import Diagonal, FullyConnected


def test_batch_equals_one_by_one_and_grid_order():
    X, y = random_separable(40, 6, seed=2)
    common = dict(model=Diagonal(2), steps=3000, init="yun")
    runs = fb.train_batch(X, y, seeds=[0, 1, 2], init_scales=[0.5, 1.0], lrs=[0.01], **common)
    assert len(runs) == 6
    for i, (seed, scale) in enumerate([(s, a) for s in (0, 1, 2) for a in (0.5, 1.0)]):
        single = fb.train(X, y, seed=seed, init_scale=scale, lr=0.01, **common)
        # six runs of one shape take the lock-step kernel: equal to round-off, not bit for bit
        np.testing.assert_allclose(runs[i].coef, single.coef, rtol=1e-12)
        np.testing.assert_allclose(runs[i].history.iterates, single.history.iterates, rtol=1e-12)
        assert runs[i].settings["seed"] == seed and runs[i].settings["init_scale"] == scale


def test_batch_shares_the_svm_reference():
    X, y = random_separable(30, 4, seed=3)
    runs = fb.train_batch(X, y, lrs=[0.001, 0.002], model=FullyConnected([3]), steps=500)
    assert runs[0].reference is runs[1].reference
    single = fb.train(X, y, lr=0.002, model=FullyConnected([3]), steps=500)
    np.testing.assert_array_equal(runs[1].history["angle_gap"], single.history["angle_gap"])


def test_batch_configs_and_errors():
    X, y = random_separable(20, 3, seed=4)
    runs = fb.train_batch(X, y, configs=[{"lr": 0.1}, {"lr": 0.2, "loss": "logistic"}], steps=100)
    assert runs[1].settings["loss"] == "logistic"
    with pytest.raises(ValueError, match="needs seeds"):
        fb.train_batch(X, y, steps=10)
    with pytest.raises(ValueError, match="either configs or"):
        fb.train_batch(X, y, configs=[{}], seeds=[1])
    with pytest.raises(ValueError, match="seeds is empty"):
        fb.train_batch(X, y, seeds=[])
    with pytest.raises(ValueError, match="lr must be > 0"):
        fb.train_batch(X, y, lrs=[0.1, -1.0], steps=10)


def _same_run(a, b):
    assert a.status == b.status and a.settings == b.settings
    assert list(a.history.columns) == list(b.history.columns)
    for name in a.history.columns:
        np.testing.assert_array_equal(a.history[name], b.history[name], err_msg=name)
    np.testing.assert_array_equal(a.coef, b.coef)
    assert (a.reference is None) == (b.reference is None)


@pytest.mark.filterwarnings("ignore:the initialization does not satisfy")
def test_batch_configs_resolve_their_own_reference():
    """Each config's reference is resolved from its own model and loss, as train resolves it:
    a Diagonal run beside a linear one has no L2 max-margin gaps (Theorem 1 is for linear and
    fully connected models), a squared-loss run has the minimum-norm interpolant."""
    X, y = random_separable(20, 4, seed=5)
    configs = [
        {"model": "diag:2", "lr": 0.01},
        {"model": "linear"},
        {"model": "linear", "loss": "squared", "lr": 0.01},
        {"model": "diag:2", "lr": 0.01, "reference": "svm"},
    ]
    for common in ({}, {"model": "linear"}, {"model": "diag:2"}):
        runs = fb.train_batch(X, y, configs=configs, steps=100, **common)
        for cfg, run in zip(configs, runs, strict=True):
            _same_run(run, fb.train(X, y, steps=100, **{**common, **cfg}))
        assert "angle_gap" not in runs[0].history and runs[0].reference is None
        assert "angle_gap" in runs[1].history and "angle_gap" in runs[3].history
        assert "distance_to_reference" in runs[2].history


@pytest.mark.parametrize("lockstep", [True, False], ids=["lockstep", "threads"])
def test_batch_issues_one_warning_per_kind_not_one_per_run(lockstep, monkeypatch):
    """Eight seeds whose initializations all miss Yun et al.'s sufficient condition give one
    warning that says so for 8 of the 8 runs (with the first one's lambda), at the caller's
    line; a batch of one run and train itself keep the plain message. The numbers of the
    others' runs differ, and the message says so."""
    import warnings

    import fastbias.optim.batch as batch

    if not lockstep:
        monkeypatch.setattr(batch, "lockstep_eligible", lambda *a: False)
    X, y = random_separable(30, 8, seed=4)
    kw = dict(model=Diagonal(2), steps=5, lr=1e-3, reference=None)

    def caught(fn):
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            fn()
        return [w for w in got if "sufficient convergence condition" in str(w.message)]

    one_by_one = [caught(lambda s=s: fb.train(X, y, seed=s, **kw)) for s in range(8)]
    assert all(len(w) == 1 for w in one_by_one)
    lambdas = {str(w[0].message) for w in one_by_one}
    assert len(lambdas) > 1  # the seeds' lambdas differ
    grouped = caught(lambda: fb.train_batch(X, y, seeds=range(8), **kw))
    assert len(grouped) == 1
    message = str(grouped[0].message)
    assert message.startswith("8 of the 8 runs: " + str(one_by_one[0][0].message))
    assert message.endswith("(the figures of the first of them; they differ from run to run)")
    assert grouped[0].filename == __file__
    single = caught(lambda: fb.train_batch(X, y, seeds=[0], **kw))
    assert [str(w.message) for w in single] == [str(one_by_one[0][0].message)]


def test_batch_equals_train_bit_for_bit_where_train_takes_threads():
    """Three runs go one per thread, each with a serial C kernel, while train's float64
    linear kernel takes OpenMP threads by itself at this size (600 samples: 3 groups of 256,
    where the machine has 2 cores or more); the kernel's sums do not depend on its thread
    count, so the runs are equal bit for bit."""
    X, y = random_separable(600, 20, seed=7)
    common = dict(model="linear", steps=300)
    lrs = [2e-4, 3e-4, 5e-4]
    runs = fb.train_batch(X, y, lrs=lrs, **common)
    assert len(runs) == len(lrs)
    for lr, run in zip(lrs, runs, strict=True):
        _same_run(run, fb.train(X, y, lr=lr, **common))
