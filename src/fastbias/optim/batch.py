"""Many independent runs in one call, spread over the cores.

The compiled kernels release the GIL, so runs on worker threads execute in parallel; what is
shared is computed once: one read-only copy of the data, and the exact solutions (max-margin
reference, ``sigma_max``), which :mod:`fastbias.optim.reference` caches by the data's content.
Every run is exactly the run :func:`fastbias.train` would do with the same arguments: each
run's spec is built from its own merged arguments (model, loss, reference), as ``train``
builds it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._validation import check_positive_int
from .._warn import grouped_warnings
from ..kernels import C_THREADS
from .driver import execute
from .gd import train_spec
from .history import Run
from .lockstep import lanes_fit, lockstep_eligible, lockstep_specs, train_lockstep
from .spec import RunSpec

__all__ = ["train_batch", "execute_many"]


def _grid(seeds, init_scales, lrs, configs) -> list[dict[str, Any]]:
    if configs is not None:
        if any(v is not None for v in (seeds, init_scales, lrs)):
            raise ValueError("pass either configs or seeds/init_scales/lrs, not both.")
        configs = [dict(c) for c in configs]
        if not configs:
            raise ValueError("configs is empty; nothing to run.")
        return configs
    axes = {
        name: list(values)
        for name, values in (("seed", seeds), ("init_scale", init_scales), ("lr", lrs))
        if values is not None
    }
    if not axes:
        raise ValueError("train_batch needs seeds, init_scales, lrs or configs.")
    for name, values in axes.items():
        if not values:
            raise ValueError(f"{name}s is empty; nothing to run.")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def train_batch(
    X=None,
    y=None,
    *,
    datasets: Sequence[tuple[Any, Any]] | None = None,
    seeds: Sequence[int] | None = None,
    init_scales: Sequence[float] | None = None,
    lrs: Sequence[float] | None = None,
    configs: Iterable[dict[str, Any]] | None = None,
    n_workers: int | None = None,
    **common: Any,
) -> list[Run]:
    """Run :func:`fastbias.train` for every combination of ``seeds x init_scales x lrs``
    (those given), or for every dict in ``configs``, on ``n_workers`` threads.

    ``common`` holds the arguments shared by all runs (``model``, ``loss``, ``steps``, ...).
    ``datasets``, a sequence of ``(X, y)`` pairs given instead of ``X, y``, makes the data one
    more axis of the grid, the outermost: every run of the grid on every data set (for
    instance many draws of a random data set). Data sets of one shape go in lock step
    together, each run with its own data.
    Results are in grid order (``itertools.product`` of the given axes) and equal to calling
    :func:`fastbias.train` one run at a time: bit for bit for runs that go one per thread
    (here every run's C kernel is serial, while ``train``'s float64 linear kernel takes OpenMP
    threads by itself on large problems; its results do not depend on the thread count);
    runs made in lock step (float64 GD of Linear, Diagonal, FullyConnected over
    seeds, init scales, step sizes, and data sets of one shape with ``N * d <= 512``:
    :mod:`fastbias.optim.lockstep`) to round-off, 1e-12 or better. ``n_workers`` defaults to
    the number of cores.
    """
    runs = _grid(seeds, init_scales, lrs, configs)
    # one read-only copy of each data set for every spec (not one per run)
    data = [(_shared(Xk), yk) for Xk, yk in _datasets(X, y, datasets)]
    common.setdefault("progress", False)
    if n_workers is None:
        workers = os.cpu_count() or 1
    else:
        workers = check_positive_int(n_workers, "n_workers")
    n_runs = len(data) * len(runs)
    shape = _one_shape(data)
    d = None if shape is None else shape[1]
    # several data sets: each run's data in its own lanes, for data sets that fit (lanes_fit)
    fits = len(data) == 1 or (shape is not None and lanes_fit(*shape))
    if fits and lockstep_eligible(runs * len(data), common, d, workers):
        spec_args = {k: v for k, v in common.items() if k not in _EXECUTION}
        with grouped_warnings(n_runs):  # (one warning for 64 seeds' lambda, not 64)
            lock_specs = [s for Xk, yk in data for s in lockstep_specs(Xk, yk, runs, spec_args)]
        done = train_lockstep(lock_specs, workers)  # one kernel, SIMD lanes = runs
        if done is not None:
            return done
    specs, executions = [], []
    with grouped_warnings(n_runs):
        for (Xk, yk), cfg in itertools.product(data, runs):
            merged = {**common, **cfg}  # what describes the run, and how to execute it
            executions.append({k: merged.pop(k) for k in _EXECUTION if k in merged})
            specs.append(train_spec(Xk, yk, **merged))
    return execute_many(specs, n_workers=workers, executions=executions)


def _one_shape(data: list[tuple[Any, Any]]) -> tuple[int, int] | None:
    """``(N, d)`` when every data set's X is a 2-D array of that shape, else None."""
    shapes = {X.shape if isinstance(X, np.ndarray) and X.ndim == 2 else None for X, _ in data}
    return shapes.pop() if len(shapes) == 1 else None


def _datasets(X: Any, y: Any, datasets: Any) -> list[tuple[Any, Any]]:
    """The data sets of a batch: ``[(X, y)]``, or the pairs of ``datasets``."""
    if datasets is None:
        if X is None:
            raise ValueError("train_batch needs the data: X (and y), or datasets.")
        return [(X, y)]
    if X is not None or y is not None:
        raise ValueError("pass either X, y or datasets, not both.")
    if isinstance(datasets, np.ndarray) or not isinstance(datasets, Sequence):
        raise TypeError(
            f"datasets must be a sequence of (X, y) pairs; got {type(datasets).__name__}."
        )
    pairs = list(datasets)
    if not pairs:
        raise ValueError("datasets is empty; nothing to run.")
    for k, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise TypeError(f"datasets[{k}] must be an (X, y) pair; got {type(pair).__name__}.")
    return [(Xk, yk) for Xk, yk in pairs]


_EXECUTION = ("progress", "chunk_seconds", "checkpoint", "checkpoint_every")


def _shared(X: Any) -> Any:
    """A frozen float64 copy of ``X`` that build_spec shares instead of copying (left as it is
    when it is not a finite 2-D numeric array: build_spec then says what is wrong)."""
    try:
        A = np.array(X, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        return X
    if A.ndim != 2 or not np.all(np.isfinite(A)):
        return X
    A.setflags(write=False)
    return A


def execute_many(
    specs: Sequence[RunSpec],
    *,
    n_workers: int | None = None,
    executions: Sequence[dict[str, Any]] | None = None,
    **execution: Any,
) -> list[Run]:
    """:func:`fastbias.optim.execute` for every spec, on ``n_workers`` threads (the compiled
    kernels release the GIL); results in the order of ``specs``. ``execution`` holds the
    arguments of ``execute`` shared by all runs (``progress``, ``chunk_seconds``),
    ``executions`` per-run ones (``checkpoint``)."""
    workers = n_workers or os.cpu_count() or 1
    per_run = list(executions) if executions is not None else [{} for _ in specs]
    jobs = list(zip(specs, per_run, strict=True))

    def one(job: tuple[RunSpec, dict[str, Any]]) -> Run:
        spec, own = job
        return execute(spec, **{**execution, **own})

    def one_serial_kernel(job: tuple[RunSpec, dict[str, Any]]) -> Run:
        token = C_THREADS.set(1)  # the workers are the parallelism: no nested OpenMP teams
        try:
            return one(job)
        finally:
            C_THREADS.reset(token)

    if workers == 1 or len(jobs) == 1:
        return [one(job) for job in jobs]
    from .._blas import single_blas_thread

    # One BLAS thread while the workers run: an idle OpenBLAS pool spins after every small
    # product in the history code and takes the other core from the kernels (1.2x -> 1.9x).
    with single_blas_thread():
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            return list(pool.map(one_serial_kernel, jobs))
