"""cffi build script for ``fastbias._cext`` (the C kernels in ``csrc/``).

Used by ``setup.py`` through ``cffi_modules=["csrc/build_ffi.py:ffibuilder"]``; it can also be
run directly (``python csrc/build_ffi.py``) to compile the module into the current directory.
All paths are resolved relative to this file, so ``pip install .`` works from any cwd; the
C sources are then handed to setuptools relative to the current directory (the project root
under ``pip``), because setuptools rejects absolute paths in ``sources``.

The long double kernel must not be compiled with ``-ffast-math`` (it would allow the compiler
to change the extended-precision arithmetic) nor with ``-march=native`` (the wheel must run on
any x86-64).
"""

from __future__ import annotations

import os
import sys
from pathlib import PurePath

import cffi

HERE = os.path.dirname(os.path.abspath(__file__))


def _setuptools_path(path: str) -> str:
    """``path`` relative to the current directory, /-separated (what setuptools accepts)."""
    try:
        return PurePath(os.path.relpath(path)).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return path


with open(os.path.join(HERE, "fastbias.h"), encoding="utf-8") as fh:
    CDEF = fh.read()

SOURCES = [_setuptools_path(os.path.join(HERE, "fb_linear.c"))]

if sys.platform == "win32":
    EXTRA_COMPILE_ARGS = ["/O2", "/fp:precise"]
    LIBRARIES: list[str] = []
else:
    # -ffp-contract=off: no fused multiply-adds, so every product is rounded as in the spec.
    # -fno-math-errno lets sqrtl be a single fsqrt instruction; it changes no result.
    EXTRA_COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-plt"]
    LIBRARIES = ["m"]

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "fastbias._cext",
    '#include "fastbias.h"',
    sources=SOURCES,
    include_dirs=[HERE],
    extra_compile_args=EXTRA_COMPILE_ARGS,
    libraries=LIBRARIES,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
