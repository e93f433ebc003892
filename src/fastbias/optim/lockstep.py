"""train_batch's lock-step path: many runs of one shape in one C kernel, SIMD lanes = runs.

Runs that differ only in their seed, initial scale or step size (same data, model, loss,
steps, records) are planned exactly as :func:`fastbias.train` plans them (their
:class:`~fastbias.optim.spec.RunSpec`: validation, initialization, step size, divergence floor
and reference), then
run together by ``csrc/fb_gd_lockstep_f64.c`` (8 runs per block of AVX2 vectors, the blocks
split over ``n_workers`` threads), and finished by ``train``'s own history code. A run that
the kernel flags (divergence test failed, or parameters past ``2**16`` where the single-run
kernels start rescaling) is run again on its own (``execute(spec)``), which reproduces what a
plain ``train`` call does, error included. The iterates agree with ``train``'s to round-off.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..kernels import STEP_RULE_CODES
from ..models import Diagonal, FullyConnected, Linear, get_model
from .history import Run
from .spec import RunSpec

__all__ = ["lockstep_eligible", "train_lockstep"]

_SWEPT = {"seed", "init_scale", "lr", "init"}
_MIN_RUNS = 4
_LAST_KERNEL_SECONDS = [0.0]  # wall time of the last lock-step kernel call (benches)


def _lib():
    if os.environ.get("FASTBIAS_BACKEND", "auto") == "numba":
        return None
    from ..kernels import _c

    if not _c.available() or not hasattr(_c.lib, "fb_gd_lockstep_f64"):
        return None
    return _c


def lockstep_eligible(runs: list[dict[str, Any]], common: dict[str, Any]) -> bool:
    """Whether ``train_batch`` can run ``runs`` (dicts merged over ``common``) in lock step.

    They must differ only in ``seed``, ``init_scale``, ``lr`` or ``init``, and be plain GD in
    float64 on a Linear, Diagonal or FullyConnected model with the exponential or logistic
    loss (not logistic with ``step_rule="loss-scaled"``), without checkpoint or progress bar;
    at least four of them, and the C extension built (not ``FASTBIAS_BACKEND=numba``).
    """
    if len(runs) < _MIN_RUNS or _lib() is None:
        return False
    if any(k not in _SWEPT for cfg in runs for k in cfg):
        return False
    if common.get("optimizer", "gd") != "gd" or common.get("precision", "float64") != "float64":
        return False
    if common.get("checkpoint") is not None or common.get("progress", False):
        return False
    loss = common.get("loss", "exp")
    rule = common.get("step_rule", "fixed")
    if loss not in ("exp", "exponential", "logistic") or rule not in ("fixed", "normalized",
                                                                        "loss-scaled"):  # fmt: skip
        return False
    if loss == "logistic" and rule == "loss-scaled":
        return False
    try:
        model = get_model(common.get("model", "linear"))
    except (ValueError, TypeError):
        return False
    return isinstance(model, (Linear, Diagonal, FullyConnected))


def train_lockstep(specs: list[RunSpec], n_workers: int) -> list[Run] | None:
    """Run the runs of ``specs`` in lock step (see the module docstring); None if they turn out
    not to share a shape (then the caller runs them one by one)."""
    _c = _lib()
    from threadpoolctl import threadpool_limits

    first = specs[0]
    model = first.model
    for sp in specs[1:]:
        if (
            repr(sp.model) != repr(model)
            or sp.steps != first.steps
            or sp.loss_code != first.loss_code
            or sp.step_rule != first.step_rule
            or not np.array_equal(sp.schedule, first.schedule)
            or sp.theta0.size != first.theta0.size
            or not (sp.X is first.X or np.array_equal(sp.X, first.X))
            or not np.array_equal(sp.y, first.y)
        ):
            return None
    Z = np.ascontiguousarray(first.Z, dtype=np.float64)
    N, d = Z.shape
    P = first.theta0.size
    R = len(specs)
    block = int(_c.lib.fb_lockstep_block_runs())
    nblocks = -(-R // block)
    Rp = nblocks * block
    lanes = list(range(R)) + [0] * (Rp - R)  # padding lanes repeat run 0
    theta = np.ascontiguousarray(np.stack([specs[i].theta0 for i in lanes], axis=1))
    lr = np.array([specs[i].lr for i in lanes], dtype=np.float64)
    floor = np.array([specs[i].floor for i in lanes], dtype=np.float64)
    sched = np.array(first.schedule, dtype=np.int64)
    K = len(sched)
    rec = np.zeros((K, P, Rp))
    status = np.zeros(Rp, dtype=np.int64)
    fail = np.zeros(Rp, dtype=np.int64)
    if isinstance(model, Linear):
        kind, L, dims = 0, 1, np.zeros(1, dtype=np.int64)
        offsets = dims
    elif isinstance(model, Diagonal):
        kind, L, dims = 1, model.depth, np.zeros(1, dtype=np.int64)
        offsets = dims
    else:
        kind = 2
        dims = np.asarray(model.dims(d), dtype=np.int64)
        L = len(dims)
        sizes = [int(a * b) for a, b in zip(dims[:-1], dims[1:], strict=True)] + [int(dims[-1])]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    ffi, lib = _c.ffi, _c.lib

    def ptr(a, t="double *"):
        return ffi.cast(t, a.ctypes.data)

    def go(b0: int, b1: int) -> int:
        return lib.fb_gd_lockstep_f64(
            kind, ptr(Z), N, d, L, ptr(dims, "long long *"), ptr(offsets, "long long *"), P,
            Rp, b0, b1, ptr(theta), ptr(lr), ptr(floor), int(first.loss_code),
            STEP_RULE_CODES[first.step_rule], int(first.steps), ptr(sched, "long long *"), K,
            ptr(rec), ptr(status, "long long *"), ptr(fail, "long long *"),
        )  # fmt: skip

    workers = max(1, min(n_workers, nblocks))
    cuts = [nblocks * w // workers for w in range(workers + 1)]
    t0 = time.perf_counter()
    if workers == 1:
        codes = [go(0, nblocks)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            codes = list(pool.map(go, cuts[:-1], cuts[1:]))
    elapsed = (time.perf_counter() - t0) / R
    _LAST_KERNEL_SECONDS[0] = elapsed * R
    for code in codes:
        if code != 0:
            _c._translate(code, 0, "fb_gd_lockstep_f64")
    with threadpool_limits(limits=1, user_api="blas"):
        return [
            _result(sp, theta[:, r], rec[:, :, r], status[r], K, elapsed)
            for r, sp in enumerate(specs)
        ]


def _result(spec: RunSpec, th, rec, status, K, elapsed) -> Run:
    """The Run of one lane: the pipeline's own finish, or the run executed on its own for a
    flagged lane (which reproduces what a plain ``train`` call does, error included)."""
    from .driver import execute
    from .planner import RunState
    from .results import finish

    if status != 0 or not np.all(np.isfinite(th)):
        return execute(spec)
    state = RunState.initial(spec)
    state.theta[...] = th
    state.rec[...] = rec
    state.done = spec.steps
    state.k_rec = K
    state.elapsed = elapsed
    return finish(spec, state, "completed")
