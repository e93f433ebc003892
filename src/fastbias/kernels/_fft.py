"""Batched real FFTs with cached pyFFTW plans (``numpy.fft`` when pyFFTW is missing).

Plans are built once per ``(shape, dtype)`` with :func:`pyfftw.builders.rfft` and kept in a
module-level cache; FFTW objects are not re-entrant, so calls on a cached plan are serialized by
a lock. The outputs are copies (an FFTW object reuses its output array).
"""

from __future__ import annotations

import threading

import numpy as np

from ._aligned import empty_aligned

try:  # pragma: no cover - exercised whichever way the environment is set up
    import pyfftw
    import pyfftw.builders
except ImportError:  # pragma: no cover
    pyfftw = None

__all__ = ["rfft_rows", "real_fourier_rows", "empty_aligned", "have_pyfftw", "clear_plans"]

_PLANS: dict[tuple[tuple[int, ...], str], object] = {}
_LOCK = threading.Lock()


def have_pyfftw() -> bool:
    """Whether pyFFTW is importable (else :func:`rfft_rows` uses ``numpy.fft.rfft``)."""
    return pyfftw is not None


def clear_plans() -> None:
    """Drop every cached plan."""
    with _LOCK:
        _PLANS.clear()


def rfft_rows(A: np.ndarray) -> np.ndarray:
    """Unnormalized real DFT of every row: ``out[n, j] = sum_p A[n, p] exp(-2 pi i p j / d)``.

    Parameters
    ----------
    A : array of shape (..., d), real
        Rows to transform (float32 is promoted to float64).

    Returns
    -------
    ndarray of shape (..., d // 2 + 1), complex128
        The half spectrum (numpy convention, bins ``0 .. d // 2``), a fresh array.
    """
    A = np.ascontiguousarray(A, dtype=np.float64)
    if A.ndim == 0 or A.shape[-1] == 0 or A.size == 0 or pyfftw is None:
        return np.fft.rfft(A, axis=-1)
    key = (A.shape, A.dtype.str)
    with _LOCK:
        plan = _PLANS.get(key)
        if plan is None:
            template = pyfftw.empty_aligned(A.shape, dtype=A.dtype)
            plan = pyfftw.builders.rfft(
                template, axis=-1, planner_effort="FFTW_ESTIMATE", threads=1, avoid_copy=False
            )
            _PLANS[key] = plan
        out = plan(A)
        return np.array(out, dtype=np.complex128, copy=True)


def real_fourier_rows(Z: np.ndarray) -> np.ndarray:
    """The half spectra of the rows of ``Z`` as a real ``(d, N)`` matrix (one DFT per run).

    Row ``j < H = d // 2 + 1`` holds ``Re zhat_n[j]``; row ``H - 1 + j`` holds ``Im zhat_n[j]``
    for the interior bins ``1 <= j <= d - H`` (the imaginary parts at DC and Nyquist vanish
    for real data and are left out). So ``sum_r ZF[r, n] b[r]`` with ``b[j] = (c_j/d) Re bhat[j]``
    and ``b[H - 1 + j] = (c_j/d) Im bhat[j]`` is ``(1/d) sum_j c_j Re(conj(zhat_n[j]) bhat[j])``
    ``= z_n . beta`` (Parseval), with ``c_j = 1`` at DC and Nyquist, 2 otherwise.

    Parameters
    ----------
    Z : array of shape (N, d), real

    Returns
    -------
    ndarray of shape (d, N), float64, C-contiguous, 64-byte aligned
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    N, d = Z.shape
    H = d // 2 + 1
    Zhat = rfft_rows(Z)
    out = empty_aligned((d, N))
    out[:H] = Zhat.real.T
    out[H:] = Zhat[:, 1 : d - H + 1].imag.T
    return out
