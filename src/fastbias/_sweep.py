"""Sweeps: one grid of runs (seeds, init scales, step sizes, depths, models, ...), on this
machine's threads or across the workers of a Dask cluster, as one tidy DataFrame.

Locally the runs go through :func:`fastbias.train_batch` (threads over the nogil kernels).
With a ``dask.distributed.Client`` the grid is cut into batches, each batch one task that runs
:func:`fastbias.train_batch` on a worker; tasks that raise are retried, and a task whose worker
dies is rescheduled by Dask on another worker, where every run that had a checkpoint in
``checkpoint_dir`` continues from it through :func:`fastbias.resume` (bit-identical to a run
that was never interrupted). Both paths run the same task function, so a sweep gives the same
numbers wherever it ran.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import os
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._tidy import SETTING_COLUMNS, optional_import

__all__ = ["sweep"]

# train() arguments a sweep sets itself, or that make no sense per run
_RESERVED = ("X", "y", "checkpoint", "checkpoint_every", "progress")
_SETTINGS = ("model", "loss", "lr", "steps", "precision", "step_rule", "init_scale", "seed",
             "optimizer")  # fmt: skip
_FAMILIES = {"diag": "diag", "diagonal": "diag", "conv": "conv", "convolutional": "conv"}


@dataclass(frozen=True)
class RunFailure:
    """A run that raised (for example ``DivergenceError`` at a too large ``lr``)."""

    error: str
    message: str
    detail: str = ""

    @property
    def status(self) -> str:
        return f"failed: {self.error}: {self.message}"


def _train_arguments() -> set[str]:
    from .optim import train

    return set(inspect.signature(train).parameters) - set(_RESERVED)


def _expand(grid: Mapping[str, Sequence[Any]] | Iterable[Mapping[str, Any]]) -> list[dict]:
    """The configurations of a grid: the product of a dict's axes (in order), or a list."""
    if isinstance(grid, Mapping):
        axes = {}
        for name, values in grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise ValueError(
                    f"grid[{name!r}] must be a list of values; got {values!r} (wrap a single "
                    f"value as [{values!r}], or pass it as a keyword argument)."
                )
            axes[name] = list(values)
            if not axes[name]:
                raise ValueError(f"grid[{name!r}] is empty; nothing to run.")
        if not axes:
            raise ValueError("grid is empty; give at least one axis, e.g. {'seed': range(4)}.")
        return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    configs = [dict(c) for c in grid]
    if not configs:
        raise ValueError("grid is an empty list of configurations; nothing to run.")
    return configs


def _model_with_depth(model: Any, depth: Any) -> Any:
    """``model`` at depth L: ``"diag"``/``"conv"`` -> ``"diag:L"``; ``"fc:W"`` -> L-1 hidden
    layers of width W; ``"linear"`` only at depth 1."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ValueError(f"depth must be an int >= 1; got {depth!r}.")
    depth = int(depth)
    if not isinstance(model, str):
        raise ValueError(
            f"a depth axis needs a model family name ('diag', 'conv', 'fc:W'); got {model!r}."
        )
    name, _, arg = model.strip().lower().partition(":")
    if name in _FAMILIES and not arg:
        return f"{_FAMILIES[name]}:{depth}"
    if name in ("fc", "fully-connected", "fully_connected") and arg and "," not in arg:
        if depth < 2:
            raise ValueError(f"a fully connected model has depth >= 2; got depth={depth}.")
        return "fc:" + ",".join([arg.strip()] * (depth - 1))
    if name == "linear" and not arg:
        if depth != 1:
            raise ValueError(f"the linear model has depth 1; got depth={depth}.")
        return "linear"
    raise ValueError(
        f"depth={depth} cannot be applied to model {model!r}; use a family: 'diag', 'conv' "
        "(depth L) or 'fc:W' (L-1 hidden layers of width W)."
    )


def _digest(value: Any, h) -> None:
    """Feed a canonical form of ``value`` to the hash ``h`` (arrays by their bytes)."""
    if isinstance(value, np.ndarray):
        h.update(f"array{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _digest(value[k], h)
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _digest(v, h)
        h.update(b"]")
    else:
        h.update(repr(value).encode())


def _run_key(X: np.ndarray, y: Any, kwargs: dict[str, Any]) -> str:
    """A name for one run's checkpoint: the hash of its data and arguments, so a folder can
    be shared by several sweeps and a repeated sweep finds its own finished runs."""
    h = hashlib.sha256()
    _digest(X, h)
    _digest(None if y is None else np.asarray(y), h)
    _digest(kwargs, h)
    return h.hexdigest()[:24]


def _data_pair(X: np.ndarray, y: Any) -> tuple[np.ndarray, Any]:
    """The sweep's data as one task result that Dask can compute again if a worker dies."""
    return X, y


def _run_batch(
    items: list[tuple[int, dict[str, Any], str]],
    data: tuple[np.ndarray, Any],
    checkpoint_dir: str | None,
    checkpoint_every: float,
    n_workers: int | None,
    errors: str,
) -> list[tuple[int, Any, int]]:
    """Run one batch: ``[(index, run or RunFailure, resumed_at_step), ...]``.

    Runs with a checkpoint in ``checkpoint_dir`` continue from it (``resumed_at_step`` is the
    step it held); the others go through :func:`fastbias.train_batch`, grouped by the
    arguments train_batch shares across a call (model, loss, reference).
    """
    from .kernels import C_THREADS
    from .optim import resume, train_batch
    from .optim.checkpoint import load_checkpoint

    X, y = data
    out: dict[int, tuple[Any, int]] = {}
    fresh: list[tuple[int, dict[str, Any]]] = []
    token = C_THREADS.set(1)  # runs (threads, tasks) are the parallelism: serial C kernels
    try:
        for index, kwargs, key in items:
            path = Path(checkpoint_dir, f"run-{key}.ckpt") if checkpoint_dir else None
            if path is not None and path.exists():
                try:
                    at = int(load_checkpoint(path)[1].done)  # (spec, state)
                except Exception:  # unreadable (damaged) checkpoint: run again from step 0
                    at = None
                if at is not None:
                    try:
                        out[index] = (resume(path, checkpoint_every=checkpoint_every), at)
                    except Exception as exc:
                        if errors == "raise":
                            raise
                        out[index] = (_failure(exc), at)
                    continue
            if path is not None:
                kwargs = {
                    **kwargs,
                    "checkpoint": str(path),
                    "checkpoint_every": checkpoint_every,
                }
            fresh.append((index, kwargs))

        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for index, kwargs in fresh:
            shared = {k: kwargs[k] for k in ("model", "loss", "reference") if k in kwargs}
            groups.setdefault(repr(sorted(shared.items(), key=lambda kv: kv[0])), []).append(
                (index, kwargs)
            )
        for members in groups.values():
            shared = {
                k: members[0][1][k] for k in ("model", "loss", "reference") if k in members[0][1]
            }
            configs = [{k: v for k, v in kw.items() if k not in shared} for _, kw in members]
            try:
                runs = train_batch(X, y, configs=configs, n_workers=n_workers, **shared)
                for (index, _), run in zip(members, runs, strict=True):
                    out[index] = (run, 0)
            except Exception:
                if errors == "raise":
                    raise
                for (index, _), cfg in zip(members, configs, strict=True):
                    try:  # one at a time, to tell the failing runs from the others
                        run = train_batch(X, y, configs=[cfg], n_workers=1, **shared)[0]
                        out[index] = (run, 0)
                    except Exception as exc:
                        out[index] = (_failure(exc), 0)
    finally:
        C_THREADS.reset(token)
    return [(index, *out[index]) for index in sorted(out)]


def _failure(exc: BaseException) -> RunFailure:
    return RunFailure(
        type(exc).__name__,
        str(exc).splitlines()[0] if str(exc) else "",
        "".join(traceback.format_exception_only(type(exc), exc)).strip(),
    )


def _label(value: Any) -> Any:
    """A grid value as a table cell: scalars as they are, anything else as its repr."""
    if value is None or isinstance(value, (str, bool, int, float, np.number)):
        return value.item() if isinstance(value, np.generic) else value
    return repr(value)


def _failure_row(kwargs: dict[str, Any], failure: RunFailure) -> dict[str, Any]:
    """The settings a failed run was asked for (as a run's settings columns), and its status."""
    from .models import get_model
    from .optim import train

    asked = {
        name: p.default
        for name, p in inspect.signature(train).parameters.items()
        if p.default is not inspect.Parameter.empty and name not in _RESERVED
    }
    asked.update(kwargs)
    row = {}
    for key, value in asked.items():
        if key not in _SETTINGS:  # the columns a finished run's settings give
            continue
        if key == "model":
            try:
                model = get_model(value)
                value, row["depth"] = repr(model), model.depth
            except ValueError:
                value = repr(value)
        row[SETTING_COLUMNS.get(key, key)] = _label(value)
    row["status"] = failure.status
    return row


def _frame(
    results: list[tuple[int, Any, int]],
    configs: list[dict],
    grid_keys: list[str],
    runs_kwargs: list[dict],
):
    pd = optional_import("pandas", "fastbias.sweep")
    frames = []
    for index, result, resumed_at in results:
        cells = {"run": index}
        for key in grid_keys:
            cells[SETTING_COLUMNS.get(key, key)] = _label(configs[index].get(key))
        if isinstance(result, RunFailure):
            frame = pd.DataFrame([_failure_row(runs_kwargs[index], result)])
        else:
            frame = result.to_pandas(settings=True)
        for pos, (name, value) in enumerate(cells.items()):
            if name in frame.columns:
                if value is None:  # e.g. lr=None: keep the value the run used
                    value = frame.pop(name).tolist()
                else:
                    frame.pop(name)
            frame.insert(pos, name, value if isinstance(value, list) else [value] * len(frame))
        frame["resumed_at_step"] = resumed_at
        frames.append(frame)
    return pd.concat(frames, ignore_index=True, sort=False)


def sweep(
    grid: Mapping[str, Sequence[Any]] | Iterable[Mapping[str, Any]],
    X: Any,
    y: Any = None,
    *,
    client: Any = None,
    batch_size: int | None = None,
    n_workers: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: float = 10.0,
    retries: int = 2,
    errors: str = "record",
    progress: bool = False,
    return_runs: bool = False,
    **common: Any,
):
    """Run :func:`fastbias.train` over a grid of settings and return one tidy DataFrame.

    Parameters
    ----------
    grid : dict of lists, or list of dicts
        Axes whose product is run (``{"seed": range(8), "lr": [0.01, 0.1]}``, in the order
        given), or explicit configurations (``[{"model": "diag:2", "lr": 0.1}, ...]``). Keys
        are :func:`fastbias.train` arguments (``seed``, ``init_scale``, ``lr``, ``model``,
        ``loss``, ``steps``, ``step_rule``, ``optimizer``, ...) and ``depth``, which turns a
        model family into a model: ``"diag"``/``"conv"`` at depth L, ``"fc:W"`` with L-1
        hidden layers of width W.
    X, y :
        The data, shared by every run.
    client : dask.distributed.Client, optional
        Run the batches as tasks on this cluster's workers (``pip install
        "fastbias[dask]"``). ``None``: on this machine's threads via
        :func:`fastbias.train_batch`. To use an existing cluster, connect to its scheduler
        first: ``Client("tcp://scheduler-host:8786")``; every worker needs the same fastbias
        installed, and ``checkpoint_dir`` must be a folder every worker can read and write
        (a shared file system).
    batch_size : int, optional
        Runs per task. Default: all runs in one local batch; on a cluster, enough batches for
        two per worker thread.
    n_workers : int, optional
        Threads per batch (local default: the cores; on a cluster: 1 per task, the cluster's
        worker threads being the parallelism).
    checkpoint_dir : path, optional
        Give every run a checkpoint file here (named by a hash of its data and arguments),
        saved every ``checkpoint_every`` seconds and at the end. A task that is rerun after
        its worker died, or a sweep called again after a crash, resumes each run from its file
        (finished runs are read back, not recomputed) through :func:`fastbias.resume`.
    checkpoint_every : float
        Seconds between checkpoint saves of a run.
    retries : int
        How often Dask reruns a task that raised (worker deaths are rescheduled anyway).
    errors : {"record", "raise"}
        ``"record"``: a run that raises (e.g. :class:`fastbias.DivergenceError` at a too
        large ``lr``) gets one row with ``status = "failed: <error>: <message>"`` and the
        sweep goes on; ``"raise"``: the first such error is raised.
    progress : bool
        A progress bar over finished runs (per batch).
    return_runs : bool
        Also return the :class:`fastbias.Run` objects (a :class:`RunFailure` for failed runs),
        in grid order.
    **common :
        :func:`fastbias.train` arguments shared by every run (``steps``, ``loss``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per recorded checkpoint of every run: ``run`` (its index in the grid), the
        grid's columns (``loss`` as ``loss_function``: ``loss`` is the loss value), the run's
        other settings (``model``, ``lr``, ``steps``, ...), ``status``, the history columns
        (``step``, ``loss``, ``log_loss``, ``norm``, ``min_margin``, ``angle_gap``, ...) and
        ``resumed_at_step`` (0, or the step a rerun task continued the run from). With
        ``return_runs``: ``(frame, runs)``.

    Examples
    --------
    >>> import fastbias as fb
    >>> X, y = fb.datasets.soudry2018()
    >>> df = fb.sweep({"lr": [0.01, 0.1], "seed": [0, 1]}, X, y, steps=1000)
    >>> df["run"].nunique(), len(df)  # 4 runs x 28 checkpoints
    (4, 112)
    >>> final = df.groupby(["lr", "seed"])["angle_gap"].last()  # 1 - cos(w(T), w_hat)
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise'; got {errors!r}.")
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise ValueError(f"retries must be an int >= 0; got {retries!r}.")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
    ):
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    optional_import("pandas", "fastbias.sweep")  # fail before running anything
    configs = _expand(grid)
    allowed = _train_arguments()
    grid_keys = list(dict.fromkeys(k for c in configs for k in c))
    for key in list(grid_keys) + list(common):
        if key in _RESERVED:
            raise ValueError(
                f"{key!r} cannot be set in a sweep: "
                + (
                    "the sweep gives every run its own checkpoint (use checkpoint_dir)."
                    if key.startswith("checkpoint")
                    else "it is the sweep's own argument."
                )
            )
        if key not in allowed and key != "depth":
            raise ValueError(
                f"Unknown sweep argument {key!r}; expected fastbias.train arguments "
                f"({', '.join(sorted(allowed))}) or 'depth'."
            )
    overlap = sorted(set(grid_keys) & set(common))
    if overlap and isinstance(grid, Mapping):  # (a list of configurations may override)
        raise ValueError(f"{overlap} are both grid axes and common arguments; give each once.")
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    runs_kwargs = []
    for cfg in configs:
        kwargs = {**common, **cfg}
        if "depth" in kwargs:
            kwargs["model"] = _model_with_depth(kwargs.get("model", "linear"), kwargs.pop("depth"))
        runs_kwargs.append(kwargs)
    ckdir = None
    if checkpoint_dir is not None:
        ckdir = Path(checkpoint_dir)
        ckdir.mkdir(parents=True, exist_ok=True)
        ckdir = str(ckdir.resolve()) if client is None else str(ckdir)
    items = [(i, kw, _run_key(X, y, kw) if ckdir else "") for i, kw in enumerate(runs_kwargs)]
    if client is None:
        results = _sweep_local(
            items, X, y, ckdir, checkpoint_every, batch_size, n_workers, errors, progress
        )
    else:
        results = _sweep_dask(
            client, items, X, y, ckdir, checkpoint_every, batch_size, n_workers, errors,
            retries, progress,
        )  # fmt: skip
    frame = _frame(results, configs, grid_keys, runs_kwargs)
    if return_runs:
        return frame, [r for _, r, _ in results]
    return frame


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _sweep_local(items, X, y, ckdir, every, batch_size, n_workers, errors, progress):
    from ._progress import ProgressBar

    bar = ProgressBar(len(items), enabled=progress, unit="runs")
    bar.update(0)
    results = []
    try:
        for batch in _batches(items, batch_size or len(items)):
            results += _run_batch(batch, (X, y), ckdir, every, n_workers, errors)
            bar.update(len(results))
    finally:
        bar.close()
    return results


def _sweep_dask(client, items, X, y, ckdir, every, batch_size, n_workers, errors, retries,
                progress):  # fmt: skip
    distributed = optional_import("distributed", "fastbias.sweep(client=...)")
    from ._progress import ProgressBar

    if batch_size is None:
        threads = sum(client.nthreads().values()) or 1
        batch_size = max(1, math.ceil(len(items) / (2 * threads)))
    h = hashlib.sha256(repr([(i, k) for i, _, k in items]).encode())
    _digest([kw for _, kw, _ in items], h)
    tag = h.hexdigest()[:12]
    # The data go out as the result of a task, not by scatter: the scheduler keeps a task's
    # inputs, so if the worker holding the data dies Dask computes them again, where scattered
    # data would be lost with it and every batch waiting for them cancelled ("already
    # forgotten"). pure=False gives a fresh key, so an earlier sweep releasing the same data
    # cannot race with this one.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph")
        data = client.submit(_data_pair, X, y, pure=False)
    # A copy on every worker: Dask puts a task where its inputs are, so with the data on one
    # worker most batches went there and the others waited until they stole work (measured on
    # fresh 2-worker clusters, 4 runs of one batch each: split 3/1 or 4/0 in 5 trials of 6,
    # 2/2 in 5 of 6 with the copies; 4 one-second tasks took 3 s instead of 2).
    client.replicate([data])
    futures = [
        client.submit(
            _run_batch,
            batch,
            data,
            ckdir,
            every,
            n_workers or 1,
            errors,
            key=f"fastbias-sweep-{tag}-{k}",
            retries=retries,
            pure=False,
        )  # fmt: skip
        for k, batch in enumerate(_batches(items, batch_size))
    ]
    bar = ProgressBar(len(items), enabled=progress, unit="runs")
    bar.update(0)
    results = []
    try:
        for future in distributed.as_completed(futures):
            try:
                results += future.result()
            except Exception as exc:
                for f in futures:
                    f.cancel()
                raise RuntimeError(
                    f"a sweep task failed on the cluster after {retries} retries: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            bar.update(len(results))
    finally:
        bar.close()
    return sorted(results, key=lambda r: r[0])
