"""DFT conventions of the reference solvers (Gunasekar et al. 2018; Yun et al. 2021).

Normalization
-------------
We use the **unitary** DFT matrix of Gunasekar et al. Appendix C (item 3: ``F F^* = I``) and of
Yun et al. Corollary 3,

    F[k, p] = exp(-2 pi i k p / d) / sqrt(d),        beta_hat = F beta,

i.e. ``beta_hat = numpy.fft.fft(beta, norm="ortho")``. Gunasekar eq. (9) writes the
unnormalized sum ``sum_p beta[p] exp(-2 pi i p k / d)``; that is ``sqrt(d) F beta``, which
scales ``||beta_hat||_p`` by the constant ``sqrt(d)`` and so leaves the solutions of eqs.
(9)-(10) unchanged, but the *values* reported here (objective, margin) use the unitary F.
With it, Parseval is ``x^T beta = sum_k conj(x_hat[k]) beta_hat[k]`` (Gunasekar eq. 36), and
a depth-L full-width convolutional network ``beta = P_conv(w)`` (``fastbias.models``) has
``F beta = d^{(L-1)/2} prod_l F w_l``, which is Yun et al.'s ``S = d^{(L-1)/2} F``.

Conjugate symmetry
------------------
For real beta, ``beta_hat[d - k] = conj(beta_hat[k])``: the independent bins are
``k = 0 .. d // 2``; bin 0 (DC) is real, and for even d so is bin ``d / 2`` (Nyquist). A sum
over the full spectrum, ``sum_{k<d} |beta_hat[k]|^p``, counts every interior bin twice.

Real Fourier coordinates
------------------------
The solvers work in real coordinates ``c = Q^T beta`` with an orthogonal ``Q``:

* ``c[0] = beta_hat[0]`` (real),
* ``c[2k - 1] = sqrt(2) Re beta_hat[k]``, ``c[2k] = sqrt(2) Im beta_hat[k]`` for the interior
  bins ``k = 1 .. (d - 1) // 2``,
* ``c[d - 1] = beta_hat[d / 2]`` (real) when d is even.

``||c||_2 = ||beta_hat||_2 = ||beta||_2``, and a conjugate pair contributes
``2 |beta_hat[k]|^p = 2^{1 - p/2} ||(c[2k-1], c[2k])||_2^p`` to the full-spectrum sum, so

    ||beta_hat||_p^p = sum_g mu_g ||c_g||_2^p,   mu_g = 1 (DC, Nyquist), 2^{1 - p/2} (pairs),

a weighted group norm over the groups of :func:`fourier_groups`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dft",
    "idft",
    "dft_matrix",
    "fourier_groups",
    "real_fourier_coords",
    "from_real_fourier_coords",
    "fourier_weights",
    "dft_quasinorm",
]


def dft(beta: np.ndarray) -> np.ndarray:
    """Unitary DFT ``F beta`` along the last axis (complex, full spectrum)."""
    return np.fft.fft(np.asarray(beta, dtype=np.float64), axis=-1, norm="ortho")


def idft(beta_hat: np.ndarray, atol: float = 1e-10) -> np.ndarray:
    """Inverse unitary DFT ``F^* beta_hat`` of a conjugate-symmetric spectrum, as a real array.

    Raises ValueError if the spectrum is not conjugate symmetric (relative to ``atol``), since
    then ``F^* beta_hat`` is not real.
    """
    b = np.fft.ifft(np.asarray(beta_hat, dtype=np.complex128), axis=-1, norm="ortho")
    scale = max(float(np.abs(b).max(initial=0.0)), 1e-300)
    if np.abs(b.imag).max(initial=0.0) > atol * scale:
        raise ValueError(
            "beta_hat is not conjugate symmetric (beta_hat[d-k] != conj(beta_hat[k])), so it is "
            "not the DFT of a real vector."
        )
    return np.ascontiguousarray(b.real)


def dft_matrix(d: int) -> np.ndarray:
    """The unitary DFT matrix ``F[k, p] = exp(-2 pi i k p / d) / sqrt(d)`` (symmetric)."""
    k = np.arange(d)
    return np.exp(-2j * np.pi * np.outer(k, k) / d) / np.sqrt(d)


def fourier_groups(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of the real Fourier coordinates.

    Returns
    -------
    gid : ndarray of shape (d,), int64
        Group of each coordinate of ``c``; group g is bin ``g`` of the half spectrum.
    mult : ndarray of shape (d // 2 + 1,), int64
        How often bin g appears in the full spectrum (1 for DC and Nyquist, else 2).
    size : ndarray of shape (d // 2 + 1,), int64
        Number of real coordinates of group g (1 for DC and Nyquist, else 2).
    """
    n_int = (d - 1) // 2
    gid = np.empty(d, dtype=np.int64)
    gid[0] = 0
    gid[1 : 1 + 2 * n_int] = np.repeat(np.arange(1, n_int + 1), 2)
    if d % 2 == 0 and d > 1:
        gid[d - 1] = n_int + 1
    ng = d // 2 + 1
    mult = np.full(ng, 2, dtype=np.int64)
    mult[0] = 1
    if d % 2 == 0:
        mult[-1] = 1
    return gid, mult, mult.copy()


def fourier_weights(d: int, p: float) -> np.ndarray:
    """Group weights ``mu_g`` with ``||F beta||_p^p = sum_g mu_g ||c_g||^p`` (module docstring)."""
    _, mult, _ = fourier_groups(d)
    return mult.astype(np.float64) ** (1.0 - 0.5 * p)


def real_fourier_coords(A: np.ndarray) -> np.ndarray:
    """``c = Q^T a`` for every row ``a`` of ``A`` (real Fourier coordinates, module docstring)."""
    A = np.asarray(A, dtype=np.float64)
    d = A.shape[-1]
    H = np.fft.rfft(A, axis=-1) / np.sqrt(d)
    out = np.empty(A.shape, dtype=np.float64)
    n_int = (d - 1) // 2
    out[..., 0] = H[..., 0].real
    out[..., 1 : 1 + 2 * n_int : 2] = np.sqrt(2.0) * H[..., 1 : n_int + 1].real
    out[..., 2 : 2 + 2 * n_int : 2] = np.sqrt(2.0) * H[..., 1 : n_int + 1].imag
    if d % 2 == 0 and d > 1:
        out[..., d - 1] = H[..., d // 2].real
    return out


def from_real_fourier_coords(C: np.ndarray) -> np.ndarray:
    """``beta = Q c`` for every row ``c`` of ``C`` (inverse of :func:`real_fourier_coords`)."""
    C = np.asarray(C, dtype=np.float64)
    d = C.shape[-1]
    n_int = (d - 1) // 2
    H = np.zeros(C.shape[:-1] + (d // 2 + 1,), dtype=np.complex128)
    H[..., 0] = C[..., 0]
    H[..., 1 : n_int + 1] = (
        C[..., 1 : 1 + 2 * n_int : 2] + 1j * C[..., 2 : 2 + 2 * n_int : 2]
    ) / np.sqrt(2.0)
    if d % 2 == 0 and d > 1:
        H[..., d // 2] = C[..., d - 1]
    return np.fft.irfft(H * np.sqrt(d), n=d, axis=-1)


def dft_quasinorm(beta: np.ndarray, p: float) -> float:
    """``||F beta||_p = (sum_{k<d} |beta_hat[k]|^p)^{1/p}`` over the full spectrum."""
    mags = np.abs(dft(beta))
    if p == 1.0:
        return float(mags.sum())
    return float(np.sum(mags**p) ** (1.0 / p))
