"""Arrays whose data start on a cache-line boundary, for the compiled kernels."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["empty_aligned"]


def empty_aligned(shape: tuple[int, ...], align: int = 64) -> np.ndarray:
    """An uninitialized C-contiguous float64 array whose data starts on an ``align``-byte
    boundary (the compiled kernels' vector loops run measurably faster on aligned rows; no
    vector load crosses a cache line, and blocks of lanes split over threads share none)."""
    n = math.prod(int(k) for k in shape)
    buf = np.empty(n + align // 8, dtype=np.float64)
    start = (-buf.ctypes.data % align) // 8
    return buf[start : start + n].reshape(shape)
