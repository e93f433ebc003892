"""pytest-benchmark suite for the deep linear models (issue: deep linear networks).

``FullyConnected([50])`` with d = 50, N = 200, exp loss: fastbias's compiled run against the
same step in NumPy and PyTorch eager. ``extra_info["steps"]`` gives the per-step time.
"""

import cloops
import extended_ratio
import jobs
import numpy as np
import pytest
from baselines import (
    numpy_gd_conv,
    numpy_gd_fc2,
    torch_available,
    torch_gd_conv,
    torch_gd_fc2,
)

import fastbias as fb
from fastbias.models import FullyConnected

X, Y = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=0)
Z = np.ascontiguousarray(X * Y[:, None])
RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((50, 50)) / 50
W2 = RNG.standard_normal(50) / 7
LR = 1e-4


def _compiled_run(model, Z, params, lr, steps):
    """A no-argument callable running ``steps`` compiled GD steps from ``params`` (warmed up)."""
    run = model.runner(Z, np.zeros(len(Z)), 0, "float64")
    theta0 = model.flatten(params)
    rec = np.zeros((0, theta0.size))
    sched = np.zeros(0, dtype=np.int64)

    def go():
        theta = theta0.copy()
        run(theta, lr, 0, 0, steps, sched, rec, -1e300)
        return theta

    go()
    return go


def _cloop(job, steps):
    """The plain C loop of bench/cloops.c on the job (compiled at run time)."""
    if not cloops.available():
        pytest.skip("no C compiler for the baseline loop")
    fn = job.cloop(steps)
    fn()
    return fn


def fastbias_fc(steps):
    return _compiled_run(FullyConnected([50]), Z, [W1, W2], LR, steps)


@pytest.mark.parametrize("backend", ["fastbias", "cloop", "numpy", "torch"])
def test_fully_connected_50_step(benchmark, backend):
    benchmark.group = "FullyConnected([50]) exp-loss GD step, d=50, N=200"
    if backend == "fastbias":
        steps, fn = 2000, fastbias_fc(2000)
    elif backend == "cloop":
        steps, fn = 2000, _cloop(jobs.fc50(), 2000)
    elif backend == "numpy":
        steps = 200
        fn = lambda: numpy_gd_fc2(Z, W1, W2, LR, steps)  # noqa: E731
    else:
        if not torch_available():
            pytest.skip("PyTorch not installed (pip install '.[torch]')")
        steps = 100
        fn = lambda: torch_gd_fc2(Z, W1, W2, LR, steps)  # noqa: E731
    benchmark.extra_info["steps"] = steps
    benchmark(fn)


XC, YC = fb.datasets.separable_gaussian(64, 64, margin=0.1, seed=1)
ZC = np.ascontiguousarray(XC * YC[:, None])
FILTERS = [np.random.default_rng(l).standard_normal(64) / 8 for l in range(3)]
LR_CONV = 1e-3


def fastbias_conv(steps):
    from fastbias.models import Convolutional

    return _compiled_run(Convolutional(3), ZC, FILTERS, LR_CONV, steps)


@pytest.mark.parametrize("backend", ["fastbias", "cloop", "numpy", "torch"])
def test_convolutional3_step(benchmark, backend):
    benchmark.group = "Convolutional(3) full width, exp-loss GD step, d=64, N=64"
    if backend == "fastbias":
        steps, fn = 5000, fastbias_conv(5000)
    elif backend == "cloop":
        steps, fn = 5000, _cloop(jobs.conv3(), 5000)
    elif backend == "numpy":
        steps = 200
        fn = lambda: numpy_gd_conv(ZC, FILTERS, LR_CONV, steps)  # noqa: E731
    else:
        if not torch_available():
            pytest.skip("PyTorch not installed (pip install '.[torch]')")
        steps = 100
        fn = lambda: torch_gd_conv(ZC, FILTERS, LR_CONV, steps)  # noqa: E731
    benchmark.extra_info["steps"] = steps
    benchmark(fn)


XB, YB = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_train_batch_64_runs(benchmark, workers):
    """64 independent Diagonal(2) runs (seeds), 30k steps each: threads over nogil kernels."""
    from fastbias.models import Diagonal

    benchmark.group = "train_batch, 64 runs of Diagonal(2), d=50, N=200, 3e4 steps"
    kw = dict(model=Diagonal(2), steps=30_000, lr=1e-3, init="yun", reference=None)
    fb.train(XB, YB, **{**kw, "steps": 10})
    benchmark.extra_info["runs"] = 64
    benchmark.pedantic(
        lambda: fb.train_batch(XB, YB, seeds=range(64), n_workers=workers, **kw),
        rounds=1,
        iterations=1,
    )


@pytest.mark.parametrize("mode", ["lockstep", "threads"])
def test_train_batch_64_figure31_runs(benchmark, mode, monkeypatch):
    """64 runs of the Figure 3.1 data (step sizes), 10^5 steps each, 2 workers: the lock-step
    kernel (SIMD lanes = runs) against one run per thread. extra_info: run-steps."""
    import fastbias.optim.batch as batch

    if mode == "threads":
        monkeypatch.setattr(batch, "lockstep_eligible", lambda *a: False)
    X, y = fb.datasets.soudry2018()
    lrs = list(np.linspace(0.05, 0.5, 64))
    kw = dict(steps=100_000, reference=None, record=2, n_workers=2)
    benchmark.group = "train_batch, 64 runs of the Figure 3.1 data, 1e5 steps, 2 workers"
    benchmark.extra_info["run_steps"] = 64 * 100_000
    fb.train_batch(X, y, lrs=lrs, **{**kw, "steps": 10})
    benchmark.pedantic(lambda: fb.train_batch(X, y, lrs=lrs, **kw), rounds=3, iterations=1)


@pytest.mark.parametrize("mode", ["lockstep", "threads"])
def test_train_batch_64_datasets(benchmark, mode, monkeypatch):
    """64 data sets of the Figure 3.1 data's shape (N=16, d=2: the data scaled and jittered),
    10^5 steps each, 2 workers: in lock step with each run's data in its own lanes against one
    run per thread. extra_info: run-steps."""
    import fastbias.optim.batch as batch

    if mode == "threads":
        monkeypatch.setattr(batch, "lockstep_eligible", lambda *a: False)
    X, y = fb.datasets.soudry2018()
    rng = np.random.default_rng(0)
    datasets = [
        (X * (1 + 0.2 * rng.random()) + 0.01 * rng.standard_normal(X.shape), y) for _ in range(64)
    ]
    kw = dict(lrs=[0.1], steps=100_000, reference=None, record=2, n_workers=2)
    benchmark.group = "train_batch, 64 data sets of the Figure 3.1 shape, 1e5 steps, 2 workers"
    benchmark.extra_info["run_steps"] = 64 * 100_000
    fb.train_batch(datasets=datasets, **{**kw, "steps": 10})
    benchmark.pedantic(lambda: fb.train_batch(datasets=datasets, **kw), rounds=3, iterations=1)


@pytest.mark.parametrize("precision", ["float64", "extended"])
@pytest.mark.parametrize("job", list(extended_ratio.JOBS))
def test_extended_precision_step(benchmark, job, precision):
    """precision="extended" (csrc/fb_deep_ld.c, fb_conv_ld.c) against float64, per step:
    ``extra_info["steps"]``; ``python bench/extended_ratio.py`` prints the ratios."""
    benchmark.group = f"{job}, exp-loss GD step, float64 vs extended"
    fn, steps = extended_ratio.step_run(job, precision)
    benchmark.extra_info["steps"] = steps
    benchmark(fn)


@pytest.mark.parametrize("mode", ["lockstep", "threads"])
@pytest.mark.parametrize("model", ["diag", "fc"])
def test_train_batch_64_deep_runs(benchmark, model, mode, monkeypatch):
    """64 runs (seeds) of Diagonal(2) or FullyConnected([50]), d=50, N=200, 3000 steps each,
    2 workers: the lock-step kernel (16 runs per block read each element of Z once) against
    one run per thread. extra_info: run-steps."""
    import fastbias.optim.batch as batch
    from fastbias.models import Diagonal

    if mode == "threads":
        monkeypatch.setattr(batch, "lockstep_eligible", lambda *a: False)
    else:  # the kernel itself, past the size where train_batch leaves FC runs to threads
        import fastbias.optim.lockstep as lockstep

        monkeypatch.setattr(lockstep, "_FC_MAX_PARAMS", 10**9)
    mdl = Diagonal(2) if model == "diag" else FullyConnected([50])
    lr = 1e-3 if model == "diag" else 1e-4
    kw = dict(model=mdl, steps=3000, lr=lr, reference=None, record=2, n_workers=2)
    benchmark.group = f"train_batch, 64 runs of {mdl!r}, d=50, N=200, 3000 steps, 2 workers"
    benchmark.extra_info["run_steps"] = 64 * 3000
    fb.train_batch(XB, YB, seeds=range(64), **{**kw, "steps": 10})
    benchmark.pedantic(
        lambda: fb.train_batch(XB, YB, seeds=range(64), **kw), rounds=3, iterations=1
    )
