"""Private compiled kernels and their plain-NumPy references (the specification)."""

import contextvars

# Codes shared by every backend (NumPy reference, numba, C).
LOSS_CODES = {"exp": 0, "logistic": 1, "squared": 2}
STEP_RULE_CODES = {"fixed": 0, "normalized": 1, "loss-scaled": 2, "loss-scaled-backtracking": 3}

STATUS_OK = 0
STATUS_DIVERGED = 1

# Threads the C float64 kernel may use in this context (0: its own choice). train_batch sets 1
# in its workers: runs in parallel threads must not each start an OpenMP team of their own.
C_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("fastbias_c_threads", default=0)


def linear_kernel(precision: str, backend: str = "auto"):
    """The linear GD kernel for a precision: ``(kernel, dtype)``.

    float64: the C kernel (SIMD exp, OpenMP for large problems) when the extension is built,
    else numba; ``backend="numba"`` (or the environment variable ``FASTBIAS_BACKEND=numba``)
    forces numba. extended: the C long double kernel.
    """
    import os

    import numpy as np

    from ..exceptions import FastbiasError

    if backend == "auto":
        backend = os.environ.get("FASTBIAS_BACKEND", "auto")
    if precision == "float64":
        if backend in ("auto", "c"):
            from . import _c

            if _c.available() and hasattr(_c, "gd_linear_float64"):
                return _c.gd_linear_float64, np.float64
            if backend == "c":
                raise FastbiasError("backend='c' needs the compiled extension fastbias._cext.")
        from . import _numba

        return _numba.gd_linear, np.float64
    from . import _c

    if not _c.available():
        raise FastbiasError(
            "precision='extended' needs the compiled C extension fastbias._cext, which is not "
            "importable here; reinstall fastbias with `pip install .` on a machine with a C "
            "compiler."
        )
    return _c.gd_linear_extended, np.longdouble
