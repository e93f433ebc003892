"""Checkpoint files: a run's spec and state, written atomically, safe to load from anyone.

A checkpoint is a ZIP archive in NumPy's ``.npz`` layout (``np.load(path,
allow_pickle=False)`` opens it) that holds no pickled object, so loading one never runs code:

* ``meta.npy``: the metadata, UTF-8 JSON as bytes: the format name and version, the kind of
  run (``"run"``, ``"softmax-network"``) and its content: for :func:`fastbias.train` the run's
  :class:`~fastbias.optim.spec.RunSpec` (model as its registry config, settings, reference) and
  :class:`~fastbias.optim.planner.RunState` (step counter, kernel state), with every array
  replaced by a reference ``{"array": "a<k>"}``;
* ``a<k>.npy``: the arrays (float64, int64, bool; ``np.longdouble`` arrays of extended-precision
  runs as their raw bytes, ``uint8``, with the platform's long double format recorded, so they
  round-trip bit for bit and are refused on a platform whose long double differs);
* the archive comment: the SHA-256 (hex) of every byte of the file before it, so any change to
  the metadata or any array (a flipped bit, a truncation) is detected before anything is read.

Loading reads the file, checks the checksum, parses only ``.npy`` headers of whitelisted dtypes
whose sizes match their data, rebuilds the spec through the model registry and checks that the
state fits the spec. Any failure raises :class:`~fastbias.exceptions.CheckpointError` naming the
file and the problem. Writing goes to a temporary file in the same folder, which is flushed
to disk and renamed over the target, so a crash or a kill while writing leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import CheckpointError

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "write_archive",
    "read_archive",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
]

CHECKPOINT_FORMAT = "fastbias-checkpoint"
CHECKPOINT_VERSION = 3  # 1 and 2 were pickles (never loaded: unpickling runs code)
_DIGEST_HEX = 64  # sha256
_MAGIC = b"PK\x03\x04"
_DTYPES = {"float64": np.float64, "int64": np.int64, "uint8": np.uint8, "bool": np.bool_}
_SPEC_FIELDS = (
    "X y model loss theta0 optimizer options step_rule lr safe_lr precision steps record "
    "schedule reference reference_vec w_tilde floor log_loss0 init_scale seed log_t_max t_max "
    "schedule_t classes"
).split()
_STATE_FIELDS = "theta rec scale rec_scale done k_rec elapsed kernel_state".split()


def _longdouble_format() -> dict[str, Any]:
    info = np.finfo(np.longdouble)
    return {
        "itemsize": np.dtype(np.longdouble).itemsize,
        "nmant": int(info.nmant),
        "nexp": int(info.nexp),
        "byteorder": "little" if np.little_endian else "big",
    }


# ---- encoding: JSON values with arrays set aside -----------------------------------------------


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self.index: dict[str, dict[str, Any]] = {}

    def array(self, a: np.ndarray) -> dict[str, str]:
        key = f"a{len(self.arrays)}"
        a = np.ascontiguousarray(a)
        if a.dtype == np.longdouble and np.longdouble is not np.float64:
            entry = {"dtype": "longdouble", "shape": list(a.shape)}
            a = a.reshape(-1).view(np.uint8)
        elif a.dtype.kind == "f" and a.dtype.itemsize == 8:
            entry = {"dtype": "float64", "shape": list(a.shape)}
        elif a.dtype.kind == "c" and a.dtype.itemsize == 16:
            entry = {"dtype": "complex128", "shape": list(a.shape)}
            a = a.reshape(-1).view(np.float64)
        elif a.dtype.kind in "iu" and a.dtype != np.uint8:
            a = a.astype(np.int64)
            entry = {"dtype": "int64", "shape": list(a.shape)}
        elif a.dtype == np.uint8 or a.dtype == np.bool_:
            entry = {"dtype": a.dtype.name, "shape": list(a.shape)}
        elif a.dtype.kind == "U":  # (class labels)
            a = a.astype(a.dtype.newbyteorder("<"))
            entry = {"dtype": "str", "shape": list(a.shape)}
        else:
            raise CheckpointError(f"cannot store an array of dtype {a.dtype} in a checkpoint")
        self.arrays[key] = a
        self.index[key] = entry
        return {"array": key}

    def value(self, v: Any) -> Any:
        from ..models import Model
        from ..models.registry import model_config

        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return float(v)
        if isinstance(v, np.ndarray):
            return self.array(v)
        if isinstance(v, Model):
            return {"model": self.value(model_config(v))}
        if isinstance(v, tuple):
            return {"tuple": [self.value(x) for x in v]}
        if isinstance(v, list):
            return {"list": [self.value(x) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise CheckpointError("cannot store a dict with non-string keys in a checkpoint")
            return {"dict": {k: self.value(x) for k, x in v.items()}}
        cls = type(v)
        if dataclasses.is_dataclass(v) and cls.__name__ in _result_classes():
            fields = {f.name: self.value(getattr(v, f.name)) for f in dataclasses.fields(v)}
            return {"object": cls.__name__, "fields": fields}
        raise CheckpointError(f"cannot store a {cls.__name__} in a checkpoint")


def _result_classes() -> dict[str, type]:
    """The reference-solution classes a spec's ``reference`` may hold (nothing else is built
    from a checkpoint)."""
    from ..references import (
        MarginSolution,
        MaxMarginSolution,
        MinNormSolution,
        StationarityResult,
        StationaryPoint,
    )

    classes = (MaxMarginSolution, MarginSolution, StationarityResult, StationaryPoint)
    return {c.__name__: c for c in (*classes, MinNormSolution)}


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def value(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if not isinstance(v, dict) or len(v) not in (1, 2):
            raise ValueError(f"unexpected value {str(v)[:80]}")
        if "array" in v:
            return self.arrays[v["array"]]
        if "tuple" in v:
            return tuple(self.value(x) for x in v["tuple"])
        if "list" in v:
            return [self.value(x) for x in v["list"]]
        if "dict" in v:
            return {str(k): self.value(x) for k, x in v["dict"].items()}
        if "model" in v:
            from ..models.registry import model_from_config

            return model_from_config(self.value(v["model"]))
        if "object" in v:
            cls = _result_classes()[v["object"]]
            names = {f.name for f in dataclasses.fields(cls)}
            fields = {k: self.value(x) for k, x in v["fields"].items()}
            if set(fields) - names:
                raise ValueError(f"{cls.__name__} has no fields {sorted(set(fields) - names)}")
            return cls(**fields)
        raise ValueError(f"unexpected value {str(v)[:80]}")


# ---- the file ---------------------------------------------------------------------------------


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def _file_bytes(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    meta_bytes = json.dumps(meta, allow_nan=True, separators=(",", ":")).encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("meta.npy", _npy_bytes(np.frombuffer(meta_bytes, dtype=np.uint8)))
        for key, a in arrays.items():
            zf.writestr(f"{key}.npy", _npy_bytes(a))
        zf.comment = b"0" * _DIGEST_HEX  # the checksum goes here: the last bytes of the file
    data = buf.getvalue()
    body = data[:-_DIGEST_HEX]
    return body + hashlib.sha256(body).hexdigest().encode("ascii")


def _read_npy(raw: bytes, name: str) -> np.ndarray:
    """A ``.npy`` member whose header says a whitelisted dtype and a size its data has."""
    fh = io.BytesIO(raw)
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"{name} has .npy version {version}")
    if dtype.hasobject or not (dtype.name in _DTYPES or dtype.kind == "U"):
        raise ValueError(f"{name} has dtype {dtype}, which checkpoints do not use")
    count = 1
    for n in shape:
        count *= int(n)
    body = raw[fh.tell() :]
    if count * dtype.itemsize != len(body):
        raise ValueError(f"{name} declares {shape} {dtype} but holds {len(body)} bytes")
    arr = np.frombuffer(body, dtype=dtype, count=count)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C")  # a writable native copy


def _parse(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not data.startswith(_MAGIC):
        if data[:1] == b"\x80" or data[:2] in (b"(d", b"(l", b"}q", b"]q"):
            raise ValueError(
                "it is a Python pickle (fastbias checkpoints before format 3 were pickles; they "
                "are not loaded, because unpickling a file can run arbitrary code)"
            )
        raise ValueError("it does not start like a ZIP archive")
    body, digest = data[:-_DIGEST_HEX], data[-_DIGEST_HEX:]
    if len(data) <= _DIGEST_HEX or hashlib.sha256(body).hexdigest().encode("ascii") != digest:
        raise ValueError("its checksum does not match its contents (damaged or truncated)")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        if any(i.compress_type != zipfile.ZIP_STORED for i in infos.values()):
            raise ValueError("it holds compressed members")
        if "meta.npy" not in infos:
            raise ValueError("it has no meta.npy")
        raw_meta = _read_npy(zf.read("meta.npy"), "meta.npy")
        meta = json.loads(raw_meta.tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"its metadata does not name the format {CHECKPOINT_FORMAT!r}")
        if meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"it has format version {meta.get('version')!r}; this fastbias reads version "
                f"{CHECKPOINT_VERSION}"
            )
        arrays = {}
        for key, entry in meta["arrays"].items():
            if f"{key}.npy" not in infos:
                raise ValueError(f"it has no {key}.npy")
            arr = _read_npy(zf.read(f"{key}.npy"), f"{key}.npy")
            arrays[key] = _restore_dtype(arr, entry, meta, key)
    return meta, arrays


def _restore_dtype(arr: np.ndarray, entry: dict, meta: dict, key: str) -> np.ndarray:
    shape = tuple(int(n) for n in entry["shape"])
    if entry["dtype"] == "longdouble":
        here = _longdouble_format()
        if meta.get("longdouble") != here:
            raise ValueError(
                f"it holds extended-precision arrays written with long double format "
                f"{meta.get('longdouble')}, and this platform's is {here}: they cannot be "
                "read exactly here"
            )
        if arr.dtype != np.uint8 or arr.size != int(np.prod(shape)) * here["itemsize"]:
            raise ValueError(f"array {key} does not hold {shape} long doubles")
        return arr.view(np.longdouble).reshape(shape).copy()
    if entry["dtype"] == "complex128":
        if arr.dtype != np.float64 or arr.size != 2 * int(np.prod(shape)):
            raise ValueError(f"array {key} does not hold {shape} complex numbers")
        return arr.view(np.complex128).reshape(shape).copy()
    if entry["dtype"] == "str" and arr.dtype.kind == "U" and arr.shape == shape:
        return arr
    if arr.dtype.name != entry["dtype"] or arr.shape != shape:
        raise ValueError(f"array {key} is {arr.dtype}{arr.shape}; the index says {entry}")
    return arr


# ---- public API --------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, spec: Any, state: Any) -> Path:
    """Write a run's ``spec`` (:class:`~fastbias.optim.spec.RunSpec`) and ``state``
    (:class:`~fastbias.optim.planner.RunState`) to ``path`` atomically (temporary file in the
    same folder, fsync, rename)."""
    content = {
        "spec": {name: spec.__dict__[name] for name in _SPEC_FIELDS},
        "state": {name: getattr(state, name) for name in _STATE_FIELDS},
    }
    return write_archive(path, "run", content)


def write_archive(path: str | os.PathLike, kind: str, content: dict[str, Any]) -> Path:
    """Write ``content`` (JSON values, NumPy arrays, models, reference solutions, nested in
    dicts, lists and tuples) as a checkpoint of ``kind`` to ``path``, atomically.

    The building block of :func:`save_checkpoint`, for other kinds of runs
    (``"softmax-network"``); read it back with :func:`read_archive`."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint path {path} is a directory; give a file name")
    enc = _Encoder()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "content": enc.value(dict(content)),
    }
    meta["arrays"] = enc.index
    if any(e["dtype"] == "longdouble" for e in enc.index.values()):
        meta["longdouble"] = _longdouble_format()
    data = _file_bytes(meta, enc.arrays)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover (platforms without directory descriptors)
        return path
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[Any, Any]:
    """The ``(spec, state)`` stored in ``path`` by :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        ``path`` is a directory, not a fastbias checkpoint (a pickle, another file), damaged
        (checksum), of another format version, of another kind of run, or inconsistent; the
        message names the file and the problem. Nothing in the file is executed.
    """
    content = read_archive(path, "run")
    try:
        spec, state = _build(content)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a fastbias checkpoint that this version can use: {_reason(exc)}"
        ) from None
    return spec, state


def read_archive(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """The content :func:`write_archive` stored in ``path`` as a checkpoint of ``kind``
    (arrays are writable copies; raises as :func:`load_checkpoint`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a fastbias checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc}") from None
    try:
        meta, arrays = _parse(data)
    except Exception as exc:  # any failure to parse means: not a (valid) checkpoint
        raise CheckpointError(f"{path} is not a fastbias checkpoint: {_reason(exc)}") from None
    if meta.get("kind") != kind:
        hint = {"run": "fastbias.resume", "softmax-network": "resume_softmax_network"}
        other = meta.get("kind")
        raise CheckpointError(
            f"{path} holds a {other!r} checkpoint, not a {kind!r} one"
            + (f"; continue it with {hint[other]}" if other in hint else "")
        )
    try:
        content = _Decoder(arrays).value(meta["content"])
        if not isinstance(content, dict):
            raise ValueError("its content is not a dict")
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a fastbias checkpoint that this version can use: {_reason(exc)}"
        ) from None
    return content


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _build(content: dict[str, Any]) -> tuple[Any, Any]:
    from .planner import RunState
    from .spec import RunSpec

    fields, raw_state = content["spec"], content["state"]
    if set(fields) != set(_SPEC_FIELDS) or set(raw_state) != set(_STATE_FIELDS):
        raise ValueError("its spec or state fields are not those of this version")
    for v in fields.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)
    spec = RunSpec(**fields)
    state = RunState(**raw_state)
    _check(spec, state)
    return spec, state


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(spec: Any, state: Any) -> None:
    """The spec and the state fit each other (a file that passed the checksum was written by
    fastbias, but a crafted one could still try to make a kernel index out of bounds)."""
    from ..kernels import STEP_RULE_CODES
    from .spec import LOSSES, PRECISIONS

    X, y = spec.X, spec.y
    if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float64 and X.size):
        raise ValueError("its data X is not a non-empty (N, d) float64 array")
    N, d = X.shape
    if not (isinstance(y, np.ndarray) and y.shape == (N,) and y.dtype == np.float64):
        raise ValueError(f"its labels are not {N} float64 values")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("its data are not finite")
    if spec.loss not in LOSSES or spec.precision not in PRECISIONS:
        raise ValueError(f"loss {spec.loss!r} / precision {spec.precision!r} is unknown")
    if spec.step_rule not in STEP_RULE_CODES or spec.optimizer == "flow":
        raise ValueError(f"step rule {spec.step_rule!r} / optimizer {spec.optimizer!r}")
    n = spec.model.n_params(d)
    dtype = spec.dtype
    sched = spec.schedule
    if not (_is_int(spec.steps) and spec.steps >= 1):
        raise ValueError(f"steps {spec.steps!r} is not a positive integer")
    if not (
        isinstance(sched, np.ndarray) and sched.ndim == 1 and sched.dtype == np.int64
        and sched.size >= 1 and np.all(np.diff(sched) > 0) and sched[0] >= 1
        and sched[-1] == spec.steps
    ):  # fmt: skip
        raise ValueError("its recording schedule is not increasing steps in [1, steps]")
    if not (isinstance(spec.theta0, np.ndarray) and spec.theta0.shape == (n,)):
        raise ValueError(f"its initial parameters do not have the model's {n} entries")
    for name in ("reference_vec", "w_tilde"):
        v = getattr(spec, name)
        if v is not None and not (isinstance(v, np.ndarray) and v.shape == (d,)):
            raise ValueError(f"its {name} is not a vector of length {d}")
    K = sched.size
    checks = (
        ("theta", state.theta, (n,), dtype),
        ("rec", state.rec, (K, n), dtype),
        ("scale", state.scale, (1,), np.int64),
        ("rec_scale", state.rec_scale, (K,), np.int64),
    )
    for name, a, shape, dt in checks:
        if not (isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dt):
            raise ValueError(f"its state {name} is not {shape} {np.dtype(dt)}")
    if not (_is_int(state.done) and 0 <= state.done <= spec.steps):
        raise ValueError(f"its step counter {state.done!r} is not in [0, {spec.steps}]")
    if not (
        _is_int(state.k_rec) and state.k_rec == int(np.searchsorted(sched, state.done, "right"))
    ):
        raise ValueError("its count of recorded rows does not match its step counter")
    if not isinstance(state.elapsed, float):
        raise ValueError("its elapsed time is not a number")
    ks = state.kernel_state
    if ks is not None and not (
        isinstance(ks, dict) and all(v is None or isinstance(v, np.ndarray) for v in ks.values())
    ):
        raise ValueError("its kernel state is not a dict of arrays")
