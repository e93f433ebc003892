"""cffi build script for ``fastbias._cext`` (the C kernels in ``csrc/``).

Used by ``setup.py`` through ``cffi_modules=["csrc/build_ffi.py:ffibuilder"]``; it can also be
run directly (``python csrc/build_ffi.py``) to compile the module into the current directory.
All paths are resolved relative to this file, so ``pip install .`` works from any cwd; the
C sources are then handed to setuptools relative to the current directory (the project root
under ``pip``), because setuptools rejects absolute paths in ``sources``.

The long double kernel must not be compiled with ``-ffast-math`` (it would allow the compiler
to change the extended-precision arithmetic) nor with ``-march=native`` (the wheel must run on
any x86-64). The float64 kernel gets its AVX2 code from function target attributes with a
run-time CPU check instead, and turns fused multiply-adds back on for itself with a pragma.

OpenMP (``-fopenmp``, for the float64 kernel's threads) is used when the compiler setuptools
will run can build and link a small OpenMP shared object; otherwise, or when the environment
variable ``FASTBIAS_NO_OPENMP`` is set to a non-empty value other than ``0``, the extension is
built without it and the float64 kernel runs serially.
"""

from __future__ import annotations

import os
import sys
import tempfile
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

SOURCES = [
    _setuptools_path(os.path.join(HERE, "fb_linear.c")),
    _setuptools_path(os.path.join(HERE, "fb_linear_f64.c")),
    _setuptools_path(os.path.join(HERE, "fb_deep_f64.c")),
    _setuptools_path(os.path.join(HERE, "fb_lockstep_f64.c")),
    _setuptools_path(os.path.join(HERE, "fb_conv_ld.c")),
    _setuptools_path(os.path.join(HERE, "fb_deep_ld.c")),
]

_OPENMP_TEST = r"""
#include <omp.h>
int fb_omp_test(void)
{
    int n = 0;
#pragma omp parallel reduction(+ : n)
    n += omp_get_thread_num() >= 0;
    return n;
}
"""


def _openmp_flags() -> list[str]:
    """``["-fopenmp"]`` if the C compiler of setuptools compiles and links OpenMP, else ``[]``."""
    if os.environ.get("FASTBIAS_NO_OPENMP", "") not in ("", "0"):
        return []
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:  # pragma: no cover - old setuptools
        from distutils.ccompiler import new_compiler
        from distutils.sysconfig import customize_compiler
    flags = ["-fopenmp"]
    try:
        cc = new_compiler()
        customize_compiler(cc)
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "fb_omp_test.c")
            with open(src, "w", encoding="utf-8") as fh:
                fh.write(_OPENMP_TEST)
            objs = cc.compile([src], output_dir=tmp, extra_postargs=flags)
            cc.link_shared_object(objs, os.path.join(tmp, "fb_omp_test.so"), extra_postargs=flags)
    except Exception as exc:  # any failure means: build without OpenMP
        print(f"fastbias: building without OpenMP ({exc})", file=sys.stderr)
        return []
    return flags


if sys.platform == "win32":
    EXTRA_COMPILE_ARGS = ["/O2", "/fp:precise"]
    EXTRA_LINK_ARGS: list[str] = []
    LIBRARIES: list[str] = []
else:
    # -ffp-contract=off: no fused multiply-adds, so every product is rounded as in the spec.
    # (fb_linear_f64.c re-enables contraction for itself with #pragma GCC optimize.)
    # -fno-math-errno lets sqrtl be a single fsqrt instruction; it changes no result.
    OPENMP_FLAGS = _openmp_flags()
    # -Wno-psabi: fb_linear_f64.c passes AVX vectors to always-inlined functions; GCC notes
    # that their calling convention depends on -mavx, which does not matter there.
    EXTRA_COMPILE_ARGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-plt"]
    EXTRA_COMPILE_ARGS += ["-Wno-psabi", *OPENMP_FLAGS]
    EXTRA_LINK_ARGS = list(OPENMP_FLAGS)
    LIBRARIES = ["m"]

ffibuilder = cffi.FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "fastbias._cext",
    '#include "fastbias.h"',
    sources=SOURCES,
    include_dirs=[HERE],
    extra_compile_args=EXTRA_COMPILE_ARGS,
    extra_link_args=EXTRA_LINK_ARGS,
    libraries=LIBRARIES,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
