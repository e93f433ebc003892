"""train_batch's lock-step path: many runs of one shape in one C kernel, SIMD lanes = runs.

Runs that differ only in their seed, initial scale, step size or data set (data of one shape,
and the same model, loss, steps, records) are planned exactly as :func:`fastbias.train` plans
them (their
:class:`~fastbias.optim.spec.RunSpec`: validation, initialization, step size, divergence floor
and reference), then
run together by ``csrc/fb_lockstep_f64.c`` (16 runs per block of AVX2 vectors, the blocks
split over ``n_workers`` threads), and finished by ``train``'s own history code. A run that
the kernel flags (divergence test failed, or parameters past ``2**16`` where the single-run
kernels start rescaling) is run again on its own (``execute(spec)``), which reproduces what a
plain ``train`` call does, error included. The iterates agree with ``train``'s to round-off.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._blas import one_blas_thread
from ..kernels import STEP_RULE_CODES
from ..kernels._aligned import empty_aligned
from ..models import Diagonal, FullyConnected, Linear, get_model
from .history import Run
from .spec import RunSpec

__all__ = ["lanes_fit", "lockstep_eligible", "lockstep_specs", "train_lockstep"]

_SWEPT = {"seed", "init_scale", "lr", "init"}
_MIN_RUNS = 4
# FullyConnected runs: the kernel keeps a block's parameters in a private contiguous copy and
# makes two passes over each matrix per step (fb_ls_fc_* in csrc/fb_lockstep_f64.c). Lock step
# against one run per thread, 64 runs, N=200, 2 workers, whole train_batch (2026-12-08, the
# machine shared): FullyConnected([50]) at d=50 (2550 parameters) 1.27 against 2.0 us per
# run-step; [100] at d=50 (5100) 3.9 against 5.7-6.3; [100] at d=100 (10100) 7.2-7.6 against
# 9.8-10.9; [200] at d=100 (20200) 14-16 against 16-17; [200] at d=200 (40200) 29-30 against
# 34-36 at 1000 steps but even at 300; [1000] at d=50 (51000) 51-54 against 47-49. Past
# _FC_MAX_PARAMS the threads take them. A block runs on one core with its padding lanes: from
# _FC_SMALL_PARAMS parameters (where a lane gains only ~1.5-1.8x over a single-run step on a
# core) lock step also needs enough runs to fill its cores (_fc_lanes_pay).
_FC_MAX_PARAMS = 16384
_FC_SMALL_PARAMS = 1024
_FC_LANE_GAIN = 1.5
# Runs on data sets of their own go lock-step while a block's copies of its runs' data (2 N d
# doubles per run) stay within ~128 KB of the L2: Diagonal(2), 64 data sets, 30000 steps, 2
# workers, us per run-step lock-step against one run per thread: N d = 400 0.08 against 0.12-0.14,
# 500 0.11-0.13 against 0.16-0.17, 512 0.10-0.11 against 0.11-0.12, 1024 0.19-0.29 against
# 0.16-0.31; at 10000 (N=200, d=50) 3.3-3.7 against 1.4-2.4 at 3000 steps.
_LANE_DATA_MAX = 512
_THREAD_WORK = 2e7
_LAST_KERNEL_SECONDS = [0.0]  # wall time of the last lock-step kernel call (benches)


def _lib():
    if os.environ.get("FASTBIAS_BACKEND", "auto") == "numba":
        return None
    from ..kernels import _c

    if not _c.available() or not hasattr(_c.lib, "fb_gd_lockstep_f64"):
        return None
    return _c


def _fc_lanes_pay(n_runs: int, n_workers: int, block: int = 16) -> bool:
    """Whether ``n_runs`` lock-step lanes (``ceil(n_runs / block)`` blocks, at most one core
    each) beat one run per thread on ``n_workers`` cores when a lane is ``_FC_LANE_GAIN`` times
    as fast as a single run on a core: 16 runs on 2 workers fill one block on one core and
    lose; 22 and more (two blocks) win."""
    blocks = -(-n_runs // block)
    return block * blocks * min(n_workers, n_runs) < (
        _FC_LANE_GAIN * n_runs * min(n_workers, blocks)
    )


def lockstep_eligible(
    runs: list[dict[str, Any]],
    common: dict[str, Any],
    d: int | None = None,
    n_workers: int | None = None,
) -> bool:
    """Whether ``train_batch`` can run ``runs`` (dicts merged over ``common``) in lock step.

    They must differ only in ``seed``, ``init_scale``, ``lr`` or ``init``, and be plain GD in
    float64 on a Linear, Diagonal or FullyConnected model with the exponential or logistic
    loss (not logistic with ``step_rule="loss-scaled"``), without checkpoint or progress bar;
    at least four of them, and the C extension built (not ``FASTBIAS_BACKEND=numba``). A
    FullyConnected model with more than ``_FC_MAX_PARAMS`` parameters at input dimension ``d``
    runs one run per thread instead (faster there), and so does one of more than
    ``_FC_SMALL_PARAMS`` when too few runs fill the blocks of ``n_workers`` cores (default:
    the number of cores; see ``_fc_lanes_pay``).
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
    if isinstance(model, FullyConnected) and d is not None:
        P = model.n_params(int(d))
        workers = n_workers or os.cpu_count() or 1
        block = int(_lib().lib.fb_lockstep_block_runs())
        return P <= _FC_SMALL_PARAMS or (
            P <= _FC_MAX_PARAMS and _fc_lanes_pay(len(runs), workers, block)
        )
    return isinstance(model, (Linear, Diagonal, FullyConnected))


def lanes_fit(N: int, d: int) -> bool:
    """Whether runs on data sets of their own, N samples in d dimensions each, go lock-step
    (each run's data in its lanes: ``N * d <= _LANE_DATA_MAX``)."""
    return N * d <= _LANE_DATA_MAX


def lockstep_specs(
    X: Any, y: Any, runs: list[dict[str, Any]], common: dict[str, Any]
) -> list[RunSpec]:
    """The specs of ``runs`` (eligible, see :func:`lockstep_eligible`), each equal to
    ``train_spec(X, y, **common, **cfg)``: the first is built by ``train_spec``; the others
    share its validated data, model, loss, options, schedule and data key and re-derive only
    what depends on the swept ``seed``, ``init_scale``, ``init`` and ``lr`` (initialization,
    its checks, safe and default step size, reference, divergence floor), as ``build_spec``
    does (tests/test_lockstep.py compares every field). This is ~0.3 ms per run less than a
    ``build_spec`` call each (validation, label encoding, data digest)."""
    from .gd import train_spec

    first = train_spec(X, y, **{**common, **runs[0]})
    if any(not isinstance(c.get("init", common.get("init")), str | None) for c in runs):
        return [first] + [train_spec(X, y, **{**common, **cfg}) for cfg in runs[1:]]
    from .._validation import ScaleOutOfRangeError, check_initial_outputs, check_positive
    from .._warn import warn_user
    from ..losses import log_total_loss
    from .optimizers import default_optimizer_lr
    from .reference import resolve_reference
    from .spec import _DIVERGENCE_FACTOR, _deep_default_lr, _frozen, default_lr

    mdl, Xs, ys, loss = first.model, first.X, first.y, first.loss
    N, d = Xs.shape
    Z = first.Z
    key = first.data_key  # (cached by build_spec: hashing X again costs 30-80 us)
    linear = isinstance(mdl, Linear)
    opts = dict(first.options)
    derived: dict[Any, tuple] = {(first.seed, first.init_scale, common.get("init")): (
        first.theta0, first.safe_lr, first.log_loss0, first.floor)}  # fmt: skip
    specs = [first]
    for cfg in runs[1:]:
        merged = {**common, **cfg}
        seed, init = merged.get("seed", 0), merged.get("init")
        init_scale = check_positive(merged.get("init_scale", 1.0), "init_scale")
        lr = merged.get("lr")
        got = derived.get((seed, init_scale, init))
        if got is None:
            params0 = mdl.init_params(d, init, init_scale, seed)
            theta0 = mdl.flatten(params0)
            check_initial_outputs(mdl, params0, Xs, init_scale)
            if mdl.depth > 1:
                cond = mdl.convergence_condition(params0, "classification")
                if cond is not None and not cond.holds:
                    warn_user(
                        "the initialization does not satisfy the sufficient convergence "
                        f"condition of {cond.theorem} (lambda = {cond.margin:.3g} <= 0); the "
                        "loss may not go to zero."
                    )
            margins0 = ys * (Xs @ mdl.predictor(params0))
            try:
                if linear:
                    safe_lr = default_lr(Z, theta0, loss, key=key)
                else:
                    safe_lr = _deep_default_lr(Z, theta0, margins0, mdl.depth, loss, key)
            except ScaleOutOfRangeError:
                if lr is None:
                    raise
                safe_lr = float("nan")
            log_loss0 = log_total_loss(margins0, loss)
            if loss == "exp":
                floor = -(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)
            else:
                floor = -np.exp(max(log_loss0, 0.0) + _DIVERGENCE_FACTOR)
            theta0 = _frozen(np.array(theta0, dtype=np.float64))
            got = derived[(seed, init_scale, init)] = (theta0, float(safe_lr), log_loss0, floor)
        theta0, safe_lr, log_loss0, floor = got
        if lr is None:
            lr = default_optimizer_lr("gd", opts, safe_lr, N)
        else:
            lr = check_positive(lr, "lr")
        ref_vec, ref_obj, w_tilde = resolve_reference(
            merged.get("reference", "auto"), mdl, Xs, ys, lr, theta0 if linear else None,
            first.step_rule, False, key,
        )  # fmt: skip
        spec = dataclasses.replace(
            first,
            theta0=theta0,
            lr=float(lr),
            safe_lr=safe_lr,
            reference=ref_obj,
            reference_vec=ref_vec,
            w_tilde=w_tilde,
            floor=float(floor),
            log_loss0=float(log_loss0),
            init_scale=init_scale,
            seed=seed,
        )
        spec.__dict__["data_key"] = key  # (cached_property: the data are first's)
        specs.append(spec)
    return specs


def train_lockstep(specs: list[RunSpec], n_workers: int) -> list[Run] | None:
    """Run the runs of ``specs`` in lock step (see the module docstring); None if they turn out
    not to share a shape (then the caller runs them one by one). Runs on different data of one
    shape get their own data lane by lane (the kernel's ``per_lane`` mode)."""
    _c = _lib()

    first = specs[0]
    model = first.model
    for sp in specs[1:]:
        if (
            repr(sp.model) != repr(model)
            or sp.steps != first.steps
            or sp.loss_code != first.loss_code
            or sp.step_rule != first.step_rule
            or not _same(sp.schedule, first.schedule)
            or sp.theta0.size != first.theta0.size
            or sp.X.shape != first.X.shape
        ):
            return None
    per_lane = any(not _same_data(sp, first) for sp in specs[1:])
    N, d = first.X.shape
    if per_lane and not lanes_fit(N, d):
        return None
    P = first.theta0.size
    R = len(specs)
    block = int(_c.lib.fb_lockstep_block_runs())
    nblocks = -(-R // block)
    Rp = nblocks * block
    lanes = list(range(R)) + [0] * (Rp - R)  # padding lanes repeat run 0
    if per_lane:  # (Rp, N, d): run r's data rows at Z[r]
        Z = np.ascontiguousarray(np.stack([specs[i].Z for i in lanes]), dtype=np.float64)
    else:
        Z = np.ascontiguousarray(first.Z, dtype=np.float64)
    theta = empty_aligned((P, Rp))  # (no cache line shared by two workers' blocks)
    theta[...] = np.stack([specs[i].theta0 for i in lanes], axis=1)
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
            kind, ptr(Z), int(per_lane), N, d, L, ptr(dims, "long long *"),
            ptr(offsets, "long long *"), P,
            Rp, b0, b1, ptr(theta), ptr(lr), ptr(floor), int(first.loss_code),
            STEP_RULE_CODES[first.step_rule], int(first.steps), ptr(sched, "long long *"), K,
            ptr(rec), ptr(status, "long long *"), ptr(fail, "long long *"),
        )  # fmt: skip

    # a worker thread costs ~0.1-1 ms to start and join (more on a busy machine): only for
    # batches of more than ~_THREAD_WORK flops (~2 ms of work)
    work = float(first.steps) * Rp * (N * (2 * d + 20) + 4 * P)
    workers = max(1, min(n_workers, nblocks, int(work // _THREAD_WORK) + 1))
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
    # the histories' products on one BLAS thread (see fastbias._blas), as train's finish
    with one_blas_thread(N * d, float(N * d) * K * R):
        return _finish_lanes(specs, theta, rec, status, K, elapsed)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or np.array_equal(a, b)


def _same_data(a: RunSpec, b: RunSpec) -> bool:
    """Whether two specs' runs see the same data (X and y)."""
    return _same(a.X, b.X) and _same(a.y, b.y)


def _finish_lanes(specs, theta, rec, status, K, elapsed) -> list[Run]:
    """The Run of every lane: flagged lanes are executed on their own (which reproduces what a
    plain ``train`` call does, error included); the others get their histories from one
    ``build_history`` pass over all their rows (:func:`_lane_histories`) and their Run as
    ``results.finish`` makes it, or ``finish`` itself where the batch pass does not apply."""
    from .driver import execute

    R = len(specs)
    ok = (status[:R] == 0) & np.isfinite(theta[:, :R]).all(axis=0)
    good = [r for r in range(R) if ok[r]]
    by_data: dict[tuple[int, int], list[int]] = {}  # (a data set's specs share X and y)
    for r in good:
        by_data.setdefault((id(specs[r].X), id(specs[r].y)), []).append(r)
    histories = {}
    for lanes in by_data.values():
        histories.update(_lane_histories(specs, lanes, rec, K))
    directions = _directions(specs, theta, list(histories))
    out = []
    for r, spec in enumerate(specs):
        if r in histories:
            out.append(_lane_run(spec, rec[:, :, r], elapsed, histories[r], *directions[r]))
        elif r in good:
            out.append(_result(spec, theta[:, r], rec[:, :, r], K, elapsed))
        else:
            out.append(execute(spec))
    return out


def _directions(specs: list[RunSpec], theta: np.ndarray, lanes: list[int]) -> dict:
    """``lane: (scaled params, coef, direction, log_coef_norm)`` for the lanes, the last two
    for all lanes at once as ``Run`` derives them one by one (``Run._set_direction``: rows
    normalized to a largest entry in [0.5, 1), then divided by their norm)."""
    from ..diagnostics import norm as vector_norm
    from .history import _log_scaled, _normalize_rows

    if not lanes:
        return {}
    mdl, d = specs[lanes[0]].model, specs[lanes[0]].d
    params = [[np.array(p, dtype=np.float64) for p in mdl.unflatten(theta[:, r], d)] for r in lanes]
    coefs = [np.asarray(mdl.predictor(p)) for p in params]
    C = np.array([np.asarray(c, dtype=np.float64).ravel() for c in coefs])
    Bn, ex = _normalize_rows(C, np.zeros(len(lanes), dtype=np.int64))
    n = np.asarray(vector_norm(Bn, axis=1), dtype=np.float64)
    U = np.zeros_like(Bn)
    np.divide(Bn, n[:, None], out=U, where=n[:, None] > 0)
    log_n = _log_scaled(n, ex)
    return {r: (params[i], coefs[i], U[i], float(log_n[i])) for i, r in enumerate(lanes)}


def _lane_histories(specs: list[RunSpec], good: list[int], rec: np.ndarray, K: int) -> dict:
    """The histories of the lanes ``good`` (runs on one data set: the caller groups them by
    their X and y) from ONE ``build_history`` call over all their recorded rows stacked, split
    lane by lane: every column is computed row by row, so each
    lane's rows get the arithmetic its own call does (equal bit for bit). Theorem 4's
    ``w_tilde`` depends on the run's step size: it goes in row by row. The lanes with one are
    done together, or those without (the more numerous); the others, and everything when the
    stacked columns overflow float64 (the notes would name stacked rows) or the lanes do not
    share their reference, are finished one by one."""
    from ..diagnostics import norm as vector_norm
    from .history import History, build_history

    with_wt = [r for r in good if specs[r].w_tilde is not None]
    lanes = with_wt if 2 * len(with_wt) >= len(good) else [r for r in good if r not in with_wt]
    if len(lanes) < 2 or K == 0:
        return {}
    first = specs[lanes[0]]
    sched = np.asarray(first.schedule, dtype=np.int64)
    ref = first.reference_vec
    if int(sched[-1]) != first.steps or any(
        (specs[r].reference_vec is None) != (ref is None)
        or (ref is not None and not _same(specs[r].reference_vec, ref))
        for r in lanes
    ):
        return {}
    P = rec.shape[1]
    rows = np.ascontiguousarray(np.moveaxis(rec[:, :, lanes], 2, 0)).reshape(len(lanes) * K, P)
    wt = None
    if first.w_tilde is not None:
        wt = np.repeat(np.stack([specs[r].w_tilde for r in lanes]), K, axis=0)
    h = build_history(
        np.tile(sched, len(lanes)), rows, first.model, first.d, first.Z, first.targets,
        first.loss, ref, wt, {},
    )  # fmt: skip
    if h.overflowed or h._iterates is None:
        return {}
    ref_norm = None if ref is None else float(vector_norm(ref))
    out = {}
    for i, r in enumerate(lanes):
        sl = slice(i * K, (i + 1) * K)
        meta = specs[r].settings
        if ref_norm is not None:
            meta["reference_norm"] = ref_norm
        out[r] = History(
            {name: col[sl] for name, col in h.columns.items()},
            h._iterates[sl],
            meta,
            directions=None if h._directions is None else h._directions[sl],
            scaled_iterates=h.scaled_iterates[sl],
            iterate_scale=h.iterate_scale[sl],
        )
    return out


def _lane_run(spec: RunSpec, rec, elapsed, history, scaled, coef, direction, log_norm) -> Run:
    """``results.finish`` of a completed float64 lane (no rescaling: ``theta_scale`` 0) of a
    linear-predictor model, given its history, parameters and direction."""
    from .._warn import user_stacklevel
    from ._outcome import warn_if_not_separable
    from .results import _frozen

    steps = spec.schedule
    status = _frozen("completed", spec, steps, rec, np.zeros(len(steps), dtype=np.int64), history)
    if (
        not isinstance(spec.model, (Linear, FullyConnected))
        and "min_margin" in history
        and history["min_margin"][-1] <= 0  # (else warn_if_not_separable returns at once)
    ):
        warn_if_not_separable(
            spec.X, spec.y, history, stacklevel=user_stacklevel(), key=spec.data_key
        )
    return Run(
        coef=coef,
        params=scaled,
        history=history,
        status=status,
        steps_done=spec.steps,
        settings=spec.settings,
        reference=spec.reference,
        elapsed=elapsed,
        model=spec.model,
        theta_scale=0,
        scaled_params=scaled,
        direction=direction,
        log_coef_norm=log_norm,
    )


def _result(spec: RunSpec, th, rec, K, elapsed) -> Run:
    """The Run of one unflagged lane by the pipeline's own finish."""
    from .planner import RunState
    from .results import finish

    state = RunState.initial(spec)
    state.theta[...] = th
    state.rec[...] = rec
    state.done = spec.steps
    state.k_rec = K
    state.elapsed = elapsed
    return finish(spec, state, "completed")
