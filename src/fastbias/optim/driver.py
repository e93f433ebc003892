"""The driver: runs any spec's kernel to the end in compiled chunks.

A run of ``steps`` steps is executed by its kernel (:func:`fastbias.optim.planner.plan`) in as
few calls as possible: one call when the run is short, otherwise chunks of about
``chunk_seconds`` each, so that a progress bar can be updated, Ctrl-C can stop the run between
chunks without losing finished work, and the run's state can be checkpointed. Python never
runs once per step. The chunk loop, :func:`run_chunks`, also runs the compiled steps of
``train_softmax_network`` (``optim/softmax_net.py``), whose runs are not described by a
``RunSpec``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from .._progress import ProgressBar
from .._validation import check_checkpoint_path, check_positive
from .planner import RunState, plan
from .results import MulticlassRun, Run, finish
from .spec import RunSpec

__all__ = ["execute", "drive", "run_chunks", "checkpoint_target", "InterruptFlag"]


class InterruptFlag:
    """Turns Ctrl-C into a flag checked between chunks (main thread only)."""

    def __init__(self, needed: bool = True):
        self.hit = False
        self._old = None
        self._needed = needed

    def __enter__(self):
        if self._needed and threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def execute(
    spec: RunSpec,
    state: RunState | None = None,
    *,
    progress: bool = False,
    chunk_seconds: float = 0.5,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 10.0,
) -> Run | MulticlassRun:
    """Run ``spec`` to its horizon (from ``state``, or from the start) and return its result.

    Parameters
    ----------
    spec : RunSpec
        From :func:`fastbias.optim.spec.build_spec`.
    state : RunState, optional
        Where to continue (a checkpoint's state); by default the initial state.
    progress : bool
        Show a progress bar with ETA on stderr, updated once per chunk.
    chunk_seconds : float
        Target wall time of one compiled call.
    checkpoint : path, optional
        Save the spec and the state there (atomically) every ``checkpoint_every`` seconds, at
        Ctrl-C and at the end.
    checkpoint_every : float
        Seconds between checkpoints.

    Returns
    -------
    Run or MulticlassRun
        ``status`` is ``"completed"``, ``"interrupted"`` (Ctrl-C), or for gradient flow
        ``"converged"`` or ``"max_steps"``.
    """
    state, status = drive(
        spec,
        state,
        progress=progress,
        chunk_seconds=chunk_seconds,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )
    return finish(spec, state, status)


def drive(
    spec: RunSpec,
    state: RunState | None = None,
    *,
    progress: bool = False,
    chunk_seconds: float = 0.5,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: float = 10.0,
) -> tuple[RunState, str]:
    """:func:`execute` without building the result: ``(final state, status)``."""
    chunk_seconds = check_positive(chunk_seconds, "chunk_seconds")
    runner = plan(spec).runner
    state = RunState.initial(spec) if state is None else state.resized(spec)
    save = None
    if checkpoint is not None:
        from .checkpoint import save_checkpoint

        checkpoint, checkpoint_every = checkpoint_target(checkpoint, checkpoint_every)

        def save() -> None:
            kernel_state = runner.kernel_state()
            if kernel_state is not None:
                state.kernel_state = kernel_state
            save_checkpoint(checkpoint, spec, state)

    status = run_chunks(
        runner,
        state,
        progress=progress,
        chunk_seconds=chunk_seconds,
        save=save,
        save_every=checkpoint_every,
    )
    return state, status


def checkpoint_target(checkpoint: str | os.PathLike, checkpoint_every: float) -> tuple:
    """The checked ``(path, seconds between saves)`` of a run's checkpoint: a file path (not a
    folder) in an existing folder, and a positive number of seconds."""
    path = check_checkpoint_path(checkpoint, must_exist=False)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"checkpoint folder {path.parent} does not exist")
    return path, check_positive(checkpoint_every, "checkpoint_every")


def run_chunks(
    runner: Any,
    state: Any,
    *,
    progress: bool = False,
    chunk_seconds: float = 0.5,
    save: Callable[[], None] | None = None,
    save_every: float = 10.0,
) -> str:
    """Advance ``runner`` from ``state`` to its end in compiled chunks; returns the status.

    The loop of every run: chunks of about ``chunk_seconds`` (the first sized by the runner's
    cost model, the next ones from the measured speed), a progress bar updated per chunk,
    Ctrl-C turned into a stop between chunks (status ``"interrupted"``, the finished steps
    kept), ``save()`` every ``save_every`` seconds and once at the end. ``state`` is changed
    in place; it has ``done`` and ``elapsed`` (seconds, added to here). ``runner`` (a
    :class:`~fastbias.optim.planner.StepRunner`, or any object with the same methods) has
    ``total`` (the units of progress; ``progress_unit`` names them, ``"steps"`` if absent),
    ``status`` (of a run that was not interrupted),
    ``restore(state)``, ``progress(state)``, ``finished(state)``,
    ``first_budget(chunk_seconds)``, ``next_budget(budget, did, seconds, chunk_seconds)``,
    ``advance(state, budget)`` (runs one compiled call of up to ``budget`` steps and returns
    the steps taken; raises on divergence), ``warn_if_long(state, did, seconds, first_done)``
    and ``finalize(state)``.
    """
    runner.restore(state)
    budget = runner.first_budget(chunk_seconds)
    interrupted = False
    chunks, first_done = 0, state.done
    bar = ProgressBar(
        runner.total, enabled=progress, unit=getattr(runner, "progress_unit", "steps")
    )
    try:
        bar.update(runner.progress(state))
        start = time.perf_counter()
        last_save = start
        # one chunk does it all: there is no "between chunks" for Ctrl-C to stop at
        one_chunk = budget >= runner.total - runner.progress(state)
        with InterruptFlag(needed=not one_chunk) as interrupt:
            while not runner.finished(state):
                t0 = time.perf_counter()
                did = runner.advance(state, budget)
                now = time.perf_counter()
                bar.update(runner.progress(state))
                chunks += 1
                if chunks == 2 and not progress:  # (the first chunk may include compilation)
                    runner.warn_if_long(state, did, now - t0, first_done)
                budget = runner.next_budget(budget, did, now - t0, chunk_seconds)
                if runner.finished(state):
                    break
                if interrupt.hit:
                    interrupted = True
                    break
                if save is not None and now - last_save >= save_every:
                    state.elapsed += now - start
                    start = now
                    save()
                    last_save = time.perf_counter()
    finally:
        bar.close()
    state.elapsed += time.perf_counter() - start
    runner.finalize(state)
    if save is not None:
        save()
    return "interrupted" if interrupted else runner.status
