"""Tidy views of results: pandas DataFrames and xarray Datasets, imported only when asked for.

pandas and xarray are optional (``pip install "fastbias[pandas]"`` / ``"fastbias[xarray]"``):
nothing here is imported by ``import fastbias``, and a missing library raises an ImportError
that names the extra to install.
"""

from __future__ import annotations

import csv
import importlib
import numbers
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "optional_import",
    "history_frame",
    "history_dataset",
    "run_frame",
    "write_history_csv",
    "scalar_settings",
    "SETTING_COLUMNS",
]

# run settings whose name is also a history column get another column name
SETTING_COLUMNS = {"loss": "loss_function"}

_EXTRA = {"pandas": "pandas", "xarray": "xarray", "sklearn": "sklearn", "distributed": "dask"}


def optional_import(module: str, purpose: str) -> Any:
    """Import ``module`` or raise an ImportError naming the fastbias extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA.get(top, top)
        raise ImportError(
            f"{purpose} needs {top}, which is not installed; install it with "
            f'pip install "fastbias[{extra}]" (or pip install {top}).'
        ) from exc


def scalar_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The entries of a run's settings that are one number, string or bool (table columns)."""
    out = {}
    for key, value in settings.items():
        if value is None or isinstance(value, (str, bool, numbers.Number, np.generic)):
            out[key] = value.item() if isinstance(value, np.generic) else value
    return out


def _iterate_columns(history) -> tuple[list[str], np.ndarray]:
    """``w_j`` and the iterates, or ``u_j`` and the unit directions when the iterates
    overflow float64 (runs past float64: History._csv_rows)."""
    names, rows = history._csv_rows()
    return names, np.asarray(rows, dtype=np.float64)


def history_frame(history, iterates: bool = False):
    """One row per checkpoint, one column per history column (and ``w_j`` per iterate entry)."""
    pd = optional_import("pandas", "History.to_pandas()")
    data: dict[str, Any] = {name: np.asarray(col) for name, col in history.columns.items()}
    if iterates:
        names, its = _iterate_columns(history)
        for j, name in enumerate(names):
            data[name] = its[:, j]
    return pd.DataFrame(data)


def run_frame(run, iterates: bool = False, settings: bool = True):
    """The run's history frame with its settings and status as constant leading columns."""
    frame = history_frame(run.history, iterates=iterates)
    if settings:
        consts = {SETTING_COLUMNS.get(k, k): v for k, v in scalar_settings(run.settings).items()}
        consts["status"] = run.status
        for pos, (key, value) in enumerate(
            (k, v) for k, v in consts.items() if k not in frame.columns
        ):
            frame.insert(pos, key, [value] * len(frame))
    return frame


def history_dataset(history, attrs: dict[str, Any] | None = None):
    """An xarray Dataset on the ``step`` dimension: every column, the iterates and the
    per-neuron arrays of networks (``neuron_norms_l`` on ``(step, neuron_l)``, ``active_l``
    on ``(step, sample, neuron_l)``)."""
    xr = optional_import("xarray", "History.to_xarray()")
    # (a flow's times t past 1.8e308 are not a column: then log_time is the coordinate)
    index = "step" if "step" in history.columns else "log_time"
    coords = (
        {"step": np.asarray(history.columns["step"])}
        if index == "step"
        else {"log_time": ("step", np.asarray(history.columns["log_time"]))}
    )
    data_vars: dict[str, Any] = {}
    for name, col in history.columns.items():
        if name != index:
            data_vars[name] = ("step", np.asarray(col))
    names, its = _iterate_columns(history)
    data_vars["iterates" if names[:1] != ["u_0"] else "directions"] = (("step", "component"), its)
    for name, arr in history.arrays.items():
        arr = np.asarray(arr)
        head, _, layer = name.rpartition("_")
        if layer.isdigit() and arr.ndim in (2, 3) and head:
            dims = ("step",) + (("sample",) if arr.ndim == 3 else ()) + (f"neuron_{layer}",)
        else:
            dims = ("step",) + tuple(f"{name}_dim_{i}" for i in range(1, arr.ndim))
        data_vars[name] = (dims, arr)
    meta = scalar_settings(dict(history.meta))
    meta.update(attrs or {})
    # netCDF attributes cannot be None or bool: store them as strings
    meta = {k: (str(v) if v is None or isinstance(v, bool) else v) for k, v in meta.items()}
    return xr.Dataset(data_vars, coords=coords, attrs=meta)


def write_history_csv(history, path: str | Path) -> Path:
    """The history's CSV file (columns, then ``w_0 .. w_{d-1}``), through pandas when it is
    installed and through the csv module otherwise; both write the same bytes (shortest
    round-trip floats, ``nan``/``inf`` spelled out)."""
    path = Path(path)
    try:
        import pandas  # noqa: F401
    except ImportError:
        names = list(history.columns)
        step_int = np.issubdtype(np.asarray(history.columns.get("step", [0.0])).dtype, np.integer)
        it_names, its = _iterate_columns(history)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names + it_names)
            for i in range(len(history)):
                row = [
                    repr(int(history.columns[c][i]))
                    if c == "step" and step_int
                    else repr(float(history.columns[c][i]))
                    for c in names
                ]
                row += [repr(float(x)) for x in its[i]]
                writer.writerow(row)
        return path
    frame = history_frame(history, iterates=True)
    frame.to_csv(path, index=False, na_rep="nan", lineterminator="\r\n")
    return path
