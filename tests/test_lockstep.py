"""train_batch's lock-step path (csrc/fb_lockstep_f64.c, optim/lockstep.py): many runs of one
shape in one kernel, SIMD lanes = runs; every run equals train's to round-off."""

import numpy as np
import pytest
from conftest import random_separable

import fastbias as fb
from fastbias.exceptions import DivergenceError
from fastbias.kernels import _c
from fastbias.models import Convolutional, Diagonal, FullyConnected
from fastbias.optim import lockstep

pytestmark = [
    pytest.mark.skipif(
        not (_c.available() and hasattr(_c.lib, "fb_gd_lockstep_f64")),
        reason="the C extension is not built",
    ),
    pytest.mark.filterwarnings("ignore:the initialization does not satisfy"),
]

RTOL = 1e-12


def _grid_cfgs(seeds=None, init_scales=None, lrs=None):
    from fastbias.optim.batch import _grid

    return _grid(seeds, init_scales, lrs, None)


def _check_against_train(X, y, grid, common, rtol=RTOL):
    cfgs = _grid_cfgs(**grid)
    assert lockstep.lockstep_eligible(cfgs, {"progress": False, **common})
    runs = fb.train_batch(X, y, **grid, **common)
    _check_runs(runs, [(X, y, cfg) for cfg in cfgs], common, rtol)


def _check_runs(runs, jobs, common, rtol=RTOL):
    """runs[i] equals train(X, y, **common, **cfg) for jobs[i] = (X, y, cfg), to rtol."""
    assert len(runs) == len(jobs)
    for (X, y, cfg), got in zip(jobs, runs, strict=True):
        want = fb.train(X, y, **common, **cfg)
        a, b = np.asarray(want.history.iterates), np.asarray(got.history.iterates)
        np.testing.assert_array_equal(want.history["step"], got.history["step"])
        assert np.abs(a - b).max() <= rtol * np.abs(a).max()
        np.testing.assert_allclose(got.coef, want.coef, rtol=rtol, atol=rtol * np.abs(a).max())
        hw, hg = want.history, got.history
        assert list(hg.columns) == list(hw.columns) and hg.overflowed == hw.overflowed
        assert hg.meta == hw.meta
        for key in hw.columns:
            np.testing.assert_allclose(hg[key], hw[key], rtol=1e-10, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(got.direction, want.direction, rtol=1e-10, atol=1e-13)
        assert got.log_coef_norm == pytest.approx(want.log_coef_norm, rel=1e-12)
        assert got.settings == want.settings and got.status == want.status
        assert got.steps_done == want.steps_done


def _spy_lockstep(monkeypatch):
    """A list that gets, for each lock-step kernel call of train_batch, whether its runs had
    data of their own (the kernel's per-lane mode)."""
    import fastbias.optim.batch as batch

    calls, real = [], lockstep.train_lockstep

    def spy(specs, n_workers):
        calls.append(any(s.X is not specs[0].X for s in specs))
        return real(specs, n_workers)

    monkeypatch.setattr(batch, "train_lockstep", spy)
    return calls


def _check_datasets_against_train(datasets, grid, common, monkeypatch, rtol=RTOL):
    calls = _spy_lockstep(monkeypatch)
    runs = fb.train_batch(datasets=datasets, **grid, **common)
    assert calls == [True]  # one lock-step call, each run on its own data
    jobs = [(X, y, cfg) for X, y in datasets for cfg in _grid_cfgs(**grid)]
    _check_runs(runs, jobs, common, rtol)


@pytest.mark.parametrize(
    "loss, rule", [("exp", "fixed"), ("exp", "normalized"), ("exp", "loss-scaled"),
                   ("logistic", "fixed"), ("logistic", "normalized")],
)  # fmt: skip
def test_linear_figure31_runs_equal_train(loss, rule):
    X, y = fb.datasets.soudry2018()
    lrs = {"fixed": [0.05, 0.2, 0.6, 1.0, 1.5], "normalized": [0.01, 0.05, 0.1, 0.2, 0.4],
           "loss-scaled": [0.01, 0.05, 0.1, 0.2, 0.3]}[rule]  # fmt: skip
    common = dict(steps=3000, loss=loss, step_rule=rule, reference=None)
    _check_against_train(X, y, dict(lrs=lrs), common)


@pytest.mark.parametrize(
    "model", [Diagonal(2), Diagonal(3), FullyConnected([4]), FullyConnected([5, 3])],
    ids=repr,
)  # fmt: skip
def test_deep_sweeps_equal_train(model):
    X, y = random_separable(37, 7, seed=5)  # N and d not multiples of the blocking
    common = dict(model=model, steps=1500, lr=5e-3, reference=None)
    _check_against_train(X, y, dict(seeds=range(6), init_scales=[0.5, 1.0, 1.5]), common)


@pytest.mark.parametrize("no_avx2", ["0", "1"], ids=["avx2", "baseline"])
@pytest.mark.parametrize(
    "loss, rule, lr", [("exp", "fixed", 5e-3), ("exp", "normalized", 2e-3),
                       ("exp", "loss-scaled", 2e-3), ("logistic", "normalized", 2e-3)],
)  # fmt: skip
def test_fully_connected_rules_equal_train(monkeypatch, no_avx2, loss, rule, lr):
    """The fully connected weight passes (a private copy of the block's parameters in groups
    of rows, the VJP pass, then the update with the next predictor): rows not a multiple of the
    group (9 and 6), two blocks with padding lanes, every step rule, both C copies."""
    monkeypatch.setenv("FASTBIAS_NO_AVX2", no_avx2)
    X, y = random_separable(23, 9, seed=4)
    common = dict(model=FullyConnected([6, 5]), steps=600, lr=lr, loss=loss, step_rule=rule,
                  reference=None)  # fmt: skip
    _check_against_train(X, y, dict(seeds=range(9), init_scales=[0.5, 1.0]), common)


def test_fully_connected_past_the_small_size_equal_train(monkeypatch):
    """1240 parameters (more than _FC_SMALL_PARAMS), 20 runs: lock step when the lanes pay."""
    monkeypatch.setattr(lockstep, "_fc_lanes_pay", lambda *a: True)
    X, y = random_separable(40, 30, seed=6)
    model = FullyConnected([40])
    assert model.n_params(30) > lockstep._FC_SMALL_PARAMS
    common = dict(model=model, steps=300, lr=2e-3, reference=None)
    _check_against_train(X, y, dict(seeds=range(20)), common)


def test_fully_connected_margins_past_the_direct_range():
    """Loss-scaled steps of a fully connected model: margins past 300 (the shifted weights).
    (Later on, from margins ~800-1000 here, these steps amplify round-off ~2x per step, and
    any two summation orders part: 1e-12 at step ~210-260 for lr 0.012-0.01.)"""
    X, y = fb.datasets.soudry2018()
    lrs = [0.006, 0.008, 0.01, 0.011]
    common = dict(model=FullyConnected([3]), steps=200, step_rule="loss-scaled", reference=None)
    runs = fb.train_batch(X, y, lrs=lrs, **common)
    assert runs[-1].history["min_margin"][-1] > 300 and runs[-1].theta_scale == 0
    _check_against_train(X, y, dict(lrs=lrs), common)


def test_logistic_deep_and_shared_reference():
    X, y = random_separable(30, 5, seed=8)
    common = dict(model=FullyConnected([3]), loss="logistic", steps=800, lr=0.01)
    runs = fb.train_batch(X, y, seeds=range(5), **common)
    assert all(r.reference is runs[0].reference for r in runs)
    _check_against_train(X, y, dict(seeds=range(5)), common)


def test_margins_past_the_direct_range_use_the_shift():
    """Loss-scaled steps make margins grow linearly: past 300 the weights use the minimum
    margin as shift (as the single-run kernel does)."""
    X, y = fb.datasets.soudry2018()
    common = dict(steps=2000, step_rule="loss-scaled", reference=None)
    runs = fb.train_batch(X, y, lrs=[0.5, 1.0, 1.5, 2.0], **common)
    assert runs[-1].history["min_margin"][-1] > 300
    _check_against_train(X, y, dict(lrs=[0.5, 1.0, 1.5, 2.0]), common)


@pytest.mark.parametrize(
    ("model", "lr"), [(None, 0.1), (Diagonal(2), 2.0), (FullyConnected([3]), 5.0)],
    ids=["linear", "diag", "fc"],
)  # fmt: skip
def test_a_diverging_run_raises_like_train(model, lr):
    rng = np.random.default_rng(0)  # not separable: too large steps blow the loss up
    X, y = rng.standard_normal((20, 3)), np.sign(rng.standard_normal(20))
    common = dict(steps=200, reference=None, **({} if model is None else {"model": model}))
    lrs = [0.001, 0.002, lr, 0.003]
    assert lockstep.lockstep_eligible([dict(lr=a) for a in lrs], common)
    with pytest.raises(DivergenceError) as batch_err:
        fb.train_batch(X, y, lrs=lrs, **common)
    with pytest.raises(DivergenceError) as single_err:
        fb.train(X, y, lr=lr, **common)
    assert batch_err.value.step == single_err.value.step
    assert str(batch_err.value) == str(single_err.value)


@pytest.mark.parametrize("model", [Diagonal(2), FullyConnected([3])], ids=repr)
def test_runs_past_two_to_the_16_are_rerun_by_train(model):
    """Normalized steps from ||theta|| ~ 3e4: the single-run kernels start carrying
    theta = 2**e theta_s; the lock-step kernel flags those runs and train reruns them."""
    X, y = random_separable(12, 5, seed=7)
    common = dict(model=model, steps=300, lr=2e3, step_rule="normalized", reference=None,
                  init_scale=3e4)  # fmt: skip
    runs = fb.train_batch(X, y, seeds=range(4), **common)
    for seed, got in enumerate(runs):
        want = fb.train(X, y, seed=seed, **common)
        assert got.theta_scale == want.theta_scale > 0
        np.testing.assert_array_equal(got.history.iterates, want.history.iterates)


def test_padding_lanes_and_more_than_one_block():
    X, y = random_separable(20, 3, seed=9)
    common = dict(model=Diagonal(2), steps=400, lr=0.01, reference=None)
    _check_against_train(X, y, dict(seeds=range(17)), common)


@pytest.mark.parametrize(
    "change",
    [dict(optimizer="momentum"), dict(precision="extended"), dict(precision="compensated"),
     dict(loss="squared"), dict(loss="logistic", step_rule="loss-scaled"),
     dict(model=Convolutional(2)), dict(progress=True), dict(step_rule="loss-scaled-backtracking")],
    ids=str,
)  # fmt: skip
def test_not_eligible(change):
    cfgs = [dict(seed=s) for s in range(5)]
    assert lockstep.lockstep_eligible(cfgs, {"model": "diag"})
    assert not lockstep.lockstep_eligible(cfgs, {"model": "diag", **change})


def test_not_eligible_otherwise(monkeypatch):
    assert not lockstep.lockstep_eligible([dict(seed=s) for s in range(3)], {})  # too few
    assert not lockstep.lockstep_eligible([dict(seed=1, steps=10)] * 5, {})  # steps differ
    monkeypatch.setenv("FASTBIAS_BACKEND", "numba")
    assert not lockstep.lockstep_eligible([dict(seed=s) for s in range(5)], {})


def _spec_fields(spec):
    import dataclasses

    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}


@pytest.mark.parametrize(
    "common, grid",
    [
        (dict(steps=50), dict(lrs=[0.1, 0.2], seeds=[0, 1])),
        (dict(steps=50, loss="logistic"), dict(lrs=[0.1, 0.3])),
        (dict(steps=50, step_rule="normalized"), dict(seeds=[0, 1], init_scales=[0.5, 2.0])),
        (dict(steps=50, model="diag", init="yun"), dict(seeds=[0, 1, 2], lrs=[1e-3, 2e-3])),
        (dict(steps=50, model=Diagonal(3)), dict(seeds=[0, 1], init_scales=[0.5, 1.0])),
        (dict(steps=50, model=FullyConnected([4]), reference="auto"), dict(seeds=[0, 1, 2])),
        (dict(steps=50, model=FullyConnected([4]), loss="logistic"), dict(init_scales=[0.1, 1])),
    ],
    ids=str,
)
def test_lockstep_specs_equal_train_spec(common, grid):
    """lockstep_specs derives the per-run fields as build_spec does: every field equal."""
    from fastbias.optim.gd import train_spec

    X, y = random_separable(15, 4, seed=3)
    cfgs = _grid_cfgs(**grid)
    got = lockstep.lockstep_specs(X, y, cfgs, common)
    for cfg, spec in zip(cfgs, got, strict=True):
        want = _spec_fields(train_spec(X, y, **common, **cfg))
        have = _spec_fields(spec)
        assert have.keys() == want.keys()
        for name, value in want.items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(have[name], value, err_msg=name)
            elif name == "model":
                assert repr(have[name]) == repr(value)
            elif name == "reference" and value is not None:
                np.testing.assert_array_equal(have[name].coef, value.coef)
            else:
                assert have[name] == value or (value != value and have[name] != have[name]), name


def test_lockstep_specs_raise_as_train_spec():
    X, y = random_separable(15, 4, seed=3)
    with pytest.raises(ValueError, match="lr"):
        lockstep.lockstep_specs(X, y, [dict(lr=0.1), dict(lr=-1.0)], dict(steps=10))
    with pytest.raises(ValueError, match="init_scale"):
        lockstep.lockstep_specs(X, y, [dict(seed=0), dict(init_scale=0.0)], dict(steps=10))


def test_large_fully_connected_batches_are_left_to_threads():
    """Past _FC_MAX_PARAMS parameters, or past _FC_SMALL_PARAMS with too few runs to fill the
    blocks of the workers' cores, lock step was slower than one run per thread: train_batch
    takes the threads there."""
    few, many = _grid_cfgs(seeds=range(8)), _grid_cfgs(seeds=range(32))
    common = {"model": FullyConnected([40]), "progress": False}
    assert lockstep.lockstep_eligible(few, common)  # the kind alone
    assert lockstep.lockstep_eligible(few, common, d=20)  # 840 parameters
    assert not lockstep.lockstep_eligible(few, common, d=30, n_workers=2)  # 1240: one block
    assert lockstep.lockstep_eligible(many, common, d=30, n_workers=2)  # two full blocks
    assert not lockstep.lockstep_eligible(many, common, d=30, n_workers=8)
    wide = {"model": FullyConnected([200]), "progress": False}
    assert FullyConnected([200]).n_params(100) > lockstep._FC_MAX_PARAMS
    assert not lockstep.lockstep_eligible(many, wide, d=100, n_workers=2)
    X, y = random_separable(16, 30, seed=3)
    runs = fb.train_batch(X, y, seeds=range(4), model=FullyConnected([40]), steps=20, lr=1e-3)
    want = fb.train(X, y, seed=3, model=FullyConnected([40]), steps=20, lr=1e-3)
    np.testing.assert_array_equal(runs[3].history.iterates, want.history.iterates)


@pytest.mark.parametrize(
    "n_runs, n_workers, pays", [(16, 2, False), (21, 2, False), (22, 2, True), (64, 2, True),
                                (8, 1, False), (12, 1, True), (17, 1, False), (64, 8, False)],
)  # fmt: skip
def test_fully_connected_lanes_pay(n_runs, n_workers, pays):
    """One block per core, padding lanes included, against one run per thread per core."""
    assert lockstep._fc_lanes_pay(n_runs, n_workers, 16) is pays


def test_step_size_sweeps_with_theorem4_get_their_histories_in_one_pass(monkeypatch):
    """With the default reference, each run of a step-size sweep has its own Theorem 4
    ``w_tilde``; the lanes' histories still come from one stacked pass (w_tilde row by row),
    equal bit for bit to the lane-by-lane finish, and to train to round-off."""
    X, y = fb.datasets.soudry2018()
    grid = dict(lrs=[0.05, 0.1, 0.2, 0.3, 0.4])
    common = dict(steps=2000)
    per_lane = []
    result = lockstep._result
    monkeypatch.setattr(lockstep, "_result", lambda *a: per_lane.append(1) or result(*a))
    batched = fb.train_batch(X, y, **grid, **common)
    assert per_lane == []  # every lane from the stacked pass
    assert all("theorem4_residual_norm" in r.history.columns for r in batched)
    monkeypatch.setattr(lockstep, "_lane_histories", lambda *a: {})
    one_by_one = fb.train_batch(X, y, **grid, **common)
    assert len(per_lane) == len(batched)
    for a, b in zip(batched, one_by_one, strict=True):
        assert list(a.history.columns) == list(b.history.columns)
        for key in b.history.columns:
            np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
        assert a.history.meta == b.history.meta and a.status == b.status
    _check_against_train(X, y, grid, common)


# ---- sweeps over data sets of one shape: each run's data in its own lanes ----


def _draws(n, N, d, seed=0):
    return [random_separable(N, d, seed=seed + k) for k in range(n)]


@pytest.mark.parametrize(
    "model, N, d, loss, lrs",
    [(None, 16, 2, "exp", [0.05, 0.2]), (None, 16, 2, "logistic", [0.05, 0.2]),
     (None, 23, 6, "exp", [5e-3, 0.01]), (Diagonal(2), 21, 5, "exp", [2e-3, 5e-3]),
     (Diagonal(2), 21, 5, "logistic", [2e-3, 5e-3]),
     (FullyConnected([4]), 19, 5, "exp", [2e-3, 5e-3])],
    ids=["linear-fused-exp", "linear-fused-logistic", "linear-d6", "diag", "diag-logistic", "fc"],
)  # fmt: skip
def test_dataset_sweeps_equal_train(model, N, d, loss, lrs, monkeypatch):
    """9 data sets x 2 step sizes: 18 runs in two blocks (the second padded), every one equal
    to train on its own data: the fused linear pass (d <= 4), the general pass and the deep
    models read each lane's own data."""
    common = dict(steps=600, loss=loss, reference=None, **({"model": model} if model else {}))
    _check_datasets_against_train(_draws(9, N, d), dict(lrs=lrs), common, monkeypatch)


def test_dataset_sweeps_past_the_direct_range_use_each_runs_shift(monkeypatch):
    """Loss-scaled steps push the margins past 300 at different steps on different data: the
    shifted pass reads the lanes' own data too."""
    common = dict(steps=2000, step_rule="loss-scaled", reference=None)
    X, y = fb.datasets.soudry2018()
    datasets = [(X * scale, y) for scale in (1.0, 1.3, 1.7, 2.2, 3.0)]
    runs = fb.train_batch(datasets=datasets, lrs=[1.0, 2.0], **common)
    assert max(r.history["min_margin"][-1] for r in runs) > 300
    _check_datasets_against_train(datasets, dict(lrs=[1.0, 2.0]), common, monkeypatch)


def test_dataset_sweeps_with_their_own_references(monkeypatch):
    """The default reference: each data set's max-margin solution (and Theorem 4's w_tilde per
    run), and the histories measured against it."""
    datasets = _draws(4, 18, 3, seed=60)
    common = dict(steps=800)
    _check_datasets_against_train(datasets, dict(lrs=[0.01, 0.03]), common, monkeypatch)
    runs = fb.train_batch(datasets=datasets, lrs=[0.01])
    refs = [np.asarray(r.reference.coef) for r in runs]
    assert not np.allclose(refs[0], refs[1])


@pytest.mark.parametrize("model", [None, Diagonal(2)], ids=["linear", "diag"])
def test_per_lane_data_gives_the_shared_kernels_bits(model, monkeypatch):
    """Equal data given lane by lane: the same arithmetic as the shared-data kernel, bit for
    bit (a copy of the data is taken as per-lane data once _same compares identities)."""
    X, y = random_separable(20, 3, seed=3)
    common = dict(steps=400, reference=None, lrs=[0.01, 0.02, 0.03, 0.04, 0.05])
    if model is not None:
        common["model"] = model
    shared = fb.train_batch(X, y, **common)
    monkeypatch.setattr(lockstep, "_same", lambda a, b: a is b)
    calls = _spy_lockstep(monkeypatch)
    lanes = fb.train_batch(datasets=[(X.copy(), y.copy())], **common)
    assert calls == [False]  # one data set: its runs share it
    both = fb.train_batch(datasets=[(X.copy(), y.copy()), (X.copy(), y.copy())], **common)
    assert calls == [False, True]
    for a, b, c in zip(shared, lanes, both, strict=False):
        np.testing.assert_array_equal(a.history.iterates, b.history.iterates)
        np.testing.assert_array_equal(a.history.iterates, c.history.iterates)
    for a, c in zip(shared, both[5:], strict=True):
        np.testing.assert_array_equal(a.history.iterates, c.history.iterates)


def test_a_diverging_data_set_raises_like_train():
    rng = np.random.default_rng(0)  # as test_a_diverging_run_raises_like_train
    datasets = _draws(3, 20, 3) + [(rng.standard_normal((20, 3)), np.sign(rng.standard_normal(20)))]
    common = dict(steps=200, reference=None, lrs=[0.1])
    X, y = datasets[3]  # not separable: the loss blows up
    with pytest.raises(DivergenceError) as batch_err:
        fb.train_batch(datasets=datasets, **common)
    with pytest.raises(DivergenceError) as single_err:
        fb.train(X, y, lr=0.1, steps=200, reference=None)
    assert str(batch_err.value) == str(single_err.value)


def test_data_sets_of_other_shapes_go_one_per_thread(monkeypatch):
    datasets = [random_separable(20, 3, seed=1), random_separable(25, 3, seed=2)]
    calls = _spy_lockstep(monkeypatch)
    runs = fb.train_batch(datasets=datasets, lrs=[0.1, 0.2, 0.3], steps=300, reference=None)
    assert calls == []
    for (X, y), lr, got in zip(
        [p for p in datasets for _ in range(3)], [0.1, 0.2, 0.3] * 2, runs, strict=True
    ):
        want = fb.train(X, y, lr=lr, steps=300, reference=None)
        np.testing.assert_array_equal(got.history.iterates, want.history.iterates)


def test_large_data_sets_go_one_per_thread(monkeypatch):
    """Past lanes_fit (N d = 600 > 512) a block's copies of its runs' data would not stay in
    the L2: one run per thread instead, bit for bit train's."""
    assert lockstep.lanes_fit(32, 16) and not lockstep.lanes_fit(60, 10)
    datasets = _draws(4, 60, 10, seed=70)
    calls = _spy_lockstep(monkeypatch)
    runs = fb.train_batch(datasets=datasets, lrs=[5e-3], steps=200, reference=None)
    assert calls == []
    for (X, y), got in zip(datasets, runs, strict=True):
        want = fb.train(X, y, lr=5e-3, steps=200, reference=None)
        np.testing.assert_array_equal(got.history.iterates, want.history.iterates)


def test_datasets_bad_input():
    X, y = random_separable(10, 2, seed=0)
    with pytest.raises(ValueError, match="either X, y or datasets"):
        fb.train_batch(X, y, datasets=[(X, y)], lrs=[0.1])
    with pytest.raises(ValueError, match="datasets is empty"):
        fb.train_batch(datasets=[], lrs=[0.1])
    with pytest.raises(TypeError, match=r"datasets\[1\] must be an \(X, y\) pair"):
        fb.train_batch(datasets=[(X, y), X], lrs=[0.1])
    with pytest.raises(TypeError, match="sequence of"):
        fb.train_batch(datasets=np.stack([X, X]), lrs=[0.1])
    with pytest.raises(ValueError, match="needs the data"):
        fb.train_batch(lrs=[0.1])
