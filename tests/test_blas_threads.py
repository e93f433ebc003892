"""One BLAS thread around the history's products (fastbias._blas): set only for data large
enough for OpenBLAS to thread and products small enough not to need it, and the count in
force before restored after nested and interleaved users."""

import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (its OpenBLAS loaded before the fixture counts threads)
from threadpoolctl import threadpool_info, threadpool_limits

import fastbias as fb
from fastbias import _blas
from fastbias.optim import results


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    """BLAS at 2 threads; yields the counts (a single-threaded build loaded by another test
    package stays at 1)."""
    with threadpool_limits(2, user_api="blas"):
        counts = _blas_threads()
        if 2 not in counts:
            pytest.skip("no multi-threaded BLAS library that threadpoolctl can control")
        yield counts


def test_one_thread_inside_and_the_count_restored(two_blas_threads):
    with _blas.one_blas_thread(1000 * 100, 1e6):
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == two_blas_threads


@pytest.mark.parametrize("size, work", [(40 * 16, 1e4), (10**6, 1e10)])
def test_small_data_or_large_products_keep_the_threads(two_blas_threads, size, work):
    with _blas.one_blas_thread(size, work):
        assert _blas_threads() == two_blas_threads


def test_interleaved_users_restore_the_count_of_the_first(two_blas_threads):
    a = _blas.single_blas_thread()
    b = _blas.single_blas_thread()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)  # not last in, first out (two threads finishing runs)
    assert set(_blas_threads()) == {1}
    b.__exit__(None, None, None)
    assert _blas_threads() == two_blas_threads
    assert _blas._STATE["depth"] == 0


def _threads_seen_by(monkeypatch, module, name) -> list[set[int]]:
    """Wrap ``module.name`` to note the BLAS thread counts in force at each call."""
    seen = []
    inner = getattr(module, name)

    def spy(*args):
        seen.append(set(_blas_threads()))
        return inner(*args)

    monkeypatch.setattr(module, name, spy)
    return seen


def test_train_builds_the_history_on_one_blas_thread(two_blas_threads, monkeypatch):
    X, y = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=0)
    seen = _threads_seen_by(monkeypatch, results, "_gd_run")
    run = fb.train(X, y, steps=50, reference=None)
    assert seen == [{1}]
    assert _blas_threads() == two_blas_threads
    assert np.isfinite(run.history["min_margin"]).all()
    small = fb.datasets.separable_gaussian(40, 16, margin=0.1, seed=0)
    fb.train(*small, steps=10, reference=None)
    assert seen[-1] == set(two_blas_threads)  # N d = 640: nothing to do


def test_the_limit_holds_scipys_own_blas_too():
    """SciPy's wheels bring their own OpenBLAS (its LAPACK; numba's np.dot), and threadpoolctl's
    controller sees only the libraries loaded when it is made: made before anything imported
    scipy.linalg, it still holds SciPy's BLAS (a fresh process, so that nothing did)."""
    import subprocess
    import sys

    code = (
        "import os, sys, numpy, scipy\n"
        "from fastbias import _blas\n"
        "assert 'scipy.linalg' not in sys.modules\n"
        "libs = [c.filepath for c in _blas._controller().lib_controllers]\n"
        "where = [os.path.dirname(m.__file__) + '.libs' for m in (numpy, scipy)]\n"
        "print(sum(any(p.startswith(w) for p in libs) for w in where))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    if out.strip() == "0":
        pytest.skip("NumPy and SciPy do not ship their BLAS in <package>.libs here")
    assert out.strip() == "2"


def test_lock_step_batches_build_their_histories_on_one_blas_thread(two_blas_threads, monkeypatch):
    from fastbias.optim import lockstep

    if lockstep._lib() is None:
        pytest.skip("the lock-step kernel needs the C extension")
    X, y = fb.datasets.separable_gaussian(200, 50, margin=0.1, seed=0)
    seen = _threads_seen_by(monkeypatch, lockstep, "_finish_lanes")
    runs = fb.train_batch(X, y, lrs=[5e-4, 1e-3, 1.5e-3, 2e-3], steps=20, reference=None)
    assert seen == [{1}]
    assert _blas_threads() == two_blas_threads
    assert all(np.isfinite(r.history["min_margin"]).all() for r in runs)
