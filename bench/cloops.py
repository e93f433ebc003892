"""The plain C loops of ``bench/cloops.c``, compiled at run time and loaded with ctypes.

They are the honest baseline of ``bench/compare.py`` and the benches: what a researcher gets
from an afternoon of C. :func:`library` compiles ``cloops.c`` once per process with the system
compiler (``$CC``, default ``cc``) and ``-O3 -march=native -ffast-math`` into a temporary
directory. Nothing here is shipped in the package.

Each wrapper runs ``n_steps`` exp-loss GD steps with the fixed step rule from the given
parameters (updated in place), records the parameters after the steps in ``rec_steps`` into
``rec_out`` and returns the number of steps taken (fewer when a divergence test stopped it).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fPIC", "-shared"]

_LIB: ctypes.CDLL | None = None
_DBL = ctypes.c_double
_LONG = ctypes.c_long
_PTR = ctypes.c_void_p


def available() -> bool:
    """Whether a C compiler is there to build the loops."""
    return shutil.which(os.environ.get("CC", "cc")) is not None


def library() -> ctypes.CDLL:
    """The compiled loops (built on first use, in a temporary directory removed at exit)."""
    global _LIB
    if _LIB is None:
        tmp = tempfile.mkdtemp(prefix="fastbias-cloops-")
        atexit.register(shutil.rmtree, tmp, True)
        so = os.path.join(tmp, "cloops.so")
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, *FLAGS, str(HERE / "cloops.c"), "-o", so, "-lm"], check=True)
        lib = ctypes.CDLL(so)
        common = [_DBL, _LONG, _PTR, _LONG, _PTR, _DBL]  # lr, n_steps, rec, K, rec_out, floor
        lib.cl_linear.argtypes = [_PTR, _PTR, _LONG, _LONG, *common]
        for name in ("cl_diagonal", "cl_fc2", "cl_conv"):
            getattr(lib, name).argtypes = [_PTR, _PTR, _LONG, _LONG, _LONG, *common]
        lib.cl_tensor.argtypes = [_PTR, _PTR, *[_LONG] * 5, _PTR, _PTR, _PTR, *common]
        for name in ("cl_linear", "cl_diagonal", "cl_fc2", "cl_conv", "cl_tensor"):
            getattr(lib, name).restype = _LONG
        _LIB = lib
    return _LIB


def _p(a: np.ndarray) -> int:
    return a.ctypes.data


def _f64(a: np.ndarray) -> np.ndarray:
    assert a.dtype == np.float64 and a.flags.c_contiguous
    return a


def _rec(rec_steps, rec_out, P):
    rec_steps = np.ascontiguousarray(rec_steps, dtype=np.int64)
    assert rec_out.shape == (len(rec_steps), P)
    return rec_steps, _f64(rec_out)


def linear(Z, w, lr, n_steps, rec_steps, rec_out, floor=-1e300) -> int:
    """GD on ``w`` (d,) for ``f(x) = x.w`` with data rows ``Z = y x`` (N, d)."""
    N, d = Z.shape
    rec_steps, rec_out = _rec(rec_steps, rec_out, d)
    return library().cl_linear(
        _p(_f64(Z)), _p(_f64(w)), N, d, lr, n_steps, _p(rec_steps), len(rec_steps),
        _p(rec_out), floor,
    )  # fmt: skip


def diagonal(Z, theta, depth, lr, n_steps, rec_steps, rec_out, floor=-1e300) -> int:
    """GD on a depth-L diagonal network, ``theta = [w_1, ..., w_L]`` (L d,)."""
    N, d = Z.shape
    rec_steps, rec_out = _rec(rec_steps, rec_out, theta.size)
    return library().cl_diagonal(
        _p(_f64(Z)), _p(_f64(theta)), N, d, depth, lr, n_steps, _p(rec_steps),
        len(rec_steps), _p(rec_out), floor,
    )  # fmt: skip


def fc2(Z, theta, width, lr, n_steps, rec_steps, rec_out, floor=-1e300) -> int:
    """GD on ``beta = W v`` (``FullyConnected([width])``), ``theta = [W.ravel(), v]``."""
    N, d = Z.shape
    rec_steps, rec_out = _rec(rec_steps, rec_out, theta.size)
    return library().cl_fc2(
        _p(_f64(Z)), _p(_f64(theta)), N, d, width, lr, n_steps, _p(rec_steps),
        len(rec_steps), _p(rec_out), floor,
    )  # fmt: skip


def fourier_rows(Z: np.ndarray) -> np.ndarray:
    """Each sample's half spectrum as a real row ``[Re zhat[0..H-1], Im zhat[1..d-H]]``."""
    N, d = Z.shape
    H = d // 2 + 1
    Zh = np.fft.rfft(Z, axis=1)
    return np.ascontiguousarray(np.hstack([Zh.real, Zh[:, 1 : d - H + 1].imag]))


def conv(ZF, theta, depth, lr, n_steps, rec_steps, rec_out, floor=-1e300) -> int:
    """GD on a full-width circular convolutional network in the Fourier domain; ``ZF`` from
    :func:`fourier_rows` (computed once per run, like fastbias does); ``theta`` the L
    time-domain filters (L d,)."""
    N, d = ZF.shape
    rec_steps, rec_out = _rec(rec_steps, rec_out, theta.size)
    return library().cl_conv(
        _p(_f64(ZF)), _p(_f64(theta)), N, d, depth, lr, n_steps, _p(rec_steps),
        len(rec_steps), _p(rec_out), floor,
    )  # fmt: skip


def tensor(Z, theta, jidx, pos, vals, lr, n_steps, rec_steps, rec_out, floor=-1e300) -> int:
    """GD on a linear tensor network from COO nonzeros (``pos``: positions in ``theta``)."""
    N, d = Z.shape
    nnz, L = pos.shape
    jidx = np.ascontiguousarray(jidx, dtype=np.int64)
    pos = np.ascontiguousarray(pos, dtype=np.int64)
    rec_steps, rec_out = _rec(rec_steps, rec_out, theta.size)
    return library().cl_tensor(
        _p(_f64(Z)), _p(_f64(theta)), N, d, theta.size, nnz, L, _p(jidx), _p(pos),
        _p(_f64(vals)), lr, n_steps, _p(rec_steps), len(rec_steps), _p(rec_out), floor,
    )  # fmt: skip
