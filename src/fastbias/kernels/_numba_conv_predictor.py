"""numba kernel: the predictor ``beta = P(w)`` of a circular convolutional network, every row.

``models.convolutional._adjoint_layer`` is the specification: ``A_l^T v = sum_p w_l[p]
roll(v, p)``, the taps summed in increasing ``p`` from 0 (NumPy's reduction over the middle
axis), layer by layer from the output layer down (Gunasekar et al. eq. 3). The same products
and sums in the same order here, so the predictors are the NumPy ones bit for bit
(``tests/test_convolutional.py``), without the (K, k, d) temporaries: a 10-step ``train`` call
forms the predictor three times (initial outputs, history, final ``coef``), ~10-30 us each in
NumPy.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def conv_predictors(thetas, offsets, d):
    """``P(theta)`` of every row of ``thetas`` (K, P) (float64); ``offsets``: where each
    layer starts, and ``P`` at the end (the last layer has ``d`` entries). Returns (K, d)."""
    K = thetas.shape[0]
    depth = offsets.shape[0] - 1
    out = np.empty((K, d))
    v = np.empty(d)
    acc = np.empty(d)
    last = offsets[depth - 1]
    for r in range(K):
        for i in range(d):
            v[i] = thetas[r, last + i]
        for layer in range(depth - 2, -1, -1):
            lo, hi = offsets[layer], offsets[layer + 1]
            for i in range(d):
                acc[i] = 0.0
            for p in range(hi - lo):
                w = thetas[r, lo + p]
                for i in range(d):
                    j = i - p
                    if j < 0:
                        j += d
                    acc[i] += w * v[j]
            for i in range(d):
                v[i] = acc[i]
        for i in range(d):
            out[r, i] = v[i]
    return out
