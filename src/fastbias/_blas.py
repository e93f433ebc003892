"""One BLAS thread for fastbias's own mid-sized products (the history of a run).

OpenBLAS runs a product with threads once it is large enough (a matrix-vector product from
``m n = 9216``, a matrix product from ``m n k = 262144``), and its idle threads then spin,
yielding their core in a loop, for about 0.1 s. The float64 linear kernel's OpenMP threads
meet at a barrier every step, so the next ``train`` call's kernel competed with them: ten
calls of 1000 steps on N=1000, d=100 data took 590-950 ms on a 2-core machine, against
200-260 ms with the history's products on one BLAS thread (its margins ``B Z^T`` of the
recorded iterates). Products of more than ~0.1 s of single-thread work keep their threads:
there the threads save more than the spin costs.

The limit is process-wide (BLAS has one thread count); nested and concurrent users share it
by a count, so the count in force before the first of them is restored after the last.
:func:`single_blas_thread` is the same limit unconditionally (``train_batch``'s workers, the
SVM's factorizations, the softmax network's run): entering it costs ~25 us, against 330-440 us
for threadpoolctl's ``threadpool_limits``, which surveys the loaded libraries every time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

# OpenBLAS's threshold for a threaded matrix-vector product (2304 * GEMM_MULTITHREAD_THRESHOLD)
_THREADED_FROM = 9216
# multiply-adds above which a product keeps its BLAS threads (~0.1 s on one core)
_KEEPS_THREADS = 2e8

_LOCK = threading.Lock()
_STATE: dict = {"controller": None, "depth": 0, "limiter": None}


def _controller():
    """threadpoolctl's controller of the loaded BLAS libraries (made once: ~2 ms). SciPy's
    own OpenBLAS (its LAPACK, numba's np.dot) is loaded first, so that the controller holds
    it too: it sees only the libraries loaded when it is made."""
    if _STATE["controller"] is None:
        import scipy.linalg  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _STATE["controller"] = ThreadpoolController()
    return _STATE["controller"]


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """A context running BLAS on one thread (the limit shared with concurrent users)."""
    with _LOCK:
        if _STATE["depth"] == 0:
            _STATE["limiter"] = _controller().limit(limits=1, user_api="blas")
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                _STATE["limiter"].restore_original_limits()
                _STATE["limiter"] = None


def one_blas_thread(size: int, work: float) -> contextlib.AbstractContextManager:
    """A context running BLAS on one thread, or a no-op where that changes nothing or costs.

    Parameters
    ----------
    size : int
        ``N d`` of the data: below OpenBLAS's threading threshold nothing is done (no cost).
    work : float
        Multiply-adds of the products inside: above ~0.1 s of single-thread work the BLAS
        threads are kept.
    """
    if size < _THREADED_FROM or work > _KEEPS_THREADS:
        return contextlib.nullcontext()
    return single_blas_thread()
