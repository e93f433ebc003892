"""Checkpoint files: the whole state of a run, written atomically, read back to resume.

A checkpoint is a pickle (protocol 5) of the engine's run state: data, model, settings, the
parameters (in the run's precision, so extended-precision runs resume exactly), the checkpoint
rows recorded so far and the step counter. It is written to a temporary file in the same
folder, flushed to disk and renamed over the target, so a crash or Ctrl-C while writing never
leaves a truncated checkpoint. Load checkpoints only from sources you trust (pickle).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "fastbias-checkpoint-2"


def save_checkpoint(path: str | os.PathLike, spec: Any, state: Any) -> Path:
    """Write a run's ``spec`` and ``state`` to ``path`` atomically (temporary file, fsync,
    rename)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump({"format": CHECKPOINT_FORMAT, "spec": spec, "state": state}, fh, protocol=5)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[Any, Any]:
    """The ``(spec, state)`` stored in ``path`` by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with path.open("rb") as fh:
            payload = pickle.load(fh)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ValueError(f"{path} is not a fastbias checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a fastbias checkpoint (format {CHECKPOINT_FORMAT})")
    return payload["spec"], payload["state"]
