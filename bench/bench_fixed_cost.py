"""The fixed cost of a ``train`` call (issue 12, item 2): a 10-step run of every model kind.

A sweep of many short runs pays this cost once per run: validation and defaults
(``build_spec``), the kernel choice (``plan``), the driver, and the history. The reference
solve (the exact SVM for the linear and fully connected models) is cached by the data's
content, so it is paid by the first run on a data set only; ``test_first_run_on_new_data``
times that first run (a fresh copy of the data each round), and ``test_sweep_10_steps``
calls that differ in their seed (or, linear, their step size), as a sweep's do. Goal: <= 0.5 ms
per call.

Run: ``pytest bench/bench_fixed_cost.py --benchmark-only``.
"""

import warnings

import numpy as np
import pytest

import fastbias as fb
from fastbias.models import (
    Convolutional,
    Diagonal,
    FullyConnected,
    Linear,
    LowRank,
    Network,
    Tensor,
)

X, Y = fb.datasets.separable_gaussian(40, 16, margin=0.1, seed=0)
MODELS = {
    "linear": Linear(),
    "fc": FullyConnected([8]),
    "diag": Diagonal(2),
    "conv": Convolutional(2),
    "tensor": Tensor.diagonal(16, 2),
    "network": Network.fully_connected(16, [8]),
    "lowrank": LowRank(2),
}


def _kw(name):
    kw = dict(model=MODELS[name], steps=10)
    if name != "linear":
        kw["lr"] = 1e-3
    return kw


@pytest.mark.parametrize("name", list(MODELS))
def test_train_10_steps(benchmark, name):
    benchmark.group = "fixed cost: fb.train, 10 steps, N=40, d=16 (goal <= 0.5 ms)"
    kw = _kw(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb.train(X, Y, **kw)  # compile, solve and cache the reference
        benchmark(lambda: fb.train(X, Y, **kw))


@pytest.mark.parametrize("name", list(MODELS))
def test_sweep_10_steps(benchmark, name):
    """A sweep: every call another seed (deep models: another initialization) or, for the
    zero-initialized linear model, another step size (so Theorem 4's w_tilde is solved
    again): what is cached per call's arguments does not help here, only what is cached per
    data set."""
    benchmark.group = "fixed cost: fb.train sweep (new seed / lr each call), 10 steps, N=40, d=16"
    kw = _kw(name)
    count = iter(range(10**9))
    if name == "linear":

        def call():
            return fb.train(X, Y, lr=0.01 * (1.0 + 1e-6 * next(count)), **kw)

    else:
        kw.pop("lr")  # each initialization with its own default (safe) step size

        def call():
            return fb.train(X, Y, seed=next(count), **kw)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()
        benchmark(call)


@pytest.mark.parametrize("name", ["linear", "fc"])
def test_first_run_on_new_data(benchmark, name):
    """The same call on data never seen before: the exact SVM (and w_tilde) are solved."""
    benchmark.group = "fixed cost: first fb.train on new data (reference solved)"
    kw = _kw(name)
    fb.train(X, Y, **kw)
    rng = np.random.default_rng(0)

    def fresh():
        return (X * (1.0 + 1e-9 * rng.random()),), {}

    benchmark.pedantic(lambda X: fb.train(X, Y, **kw), setup=fresh, rounds=50)
