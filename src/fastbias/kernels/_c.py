"""C kernels compiled by cffi at install time (``fastbias._cext``).

:func:`gd_linear_extended` runs in long double: on x86-64 ``long double`` (and
``np.longdouble``) is the x87 80-bit extended format with a 64-bit significand, so it carries
about 3 more decimal digits than float64. It does exactly the arithmetic of the NumPy
specification in ``_reference.py``, with the same arguments in the same order, on
``np.longdouble`` arrays.

:func:`gd_linear_float64` is the fast float64 kernel: the same specification up to round-off
(different summation order, fused multiply-adds, a vectorized exp), AVX2 code chosen at run
time, and OpenMP threads for large problems.

The extension is imported here and nowhere else; :func:`available` says whether it was built.
cffi releases the GIL for the duration of each call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import STATUS_DIVERGED, STATUS_OK
from ._aligned import empty_aligned

try:
    from fastbias._cext import ffi, lib
except ImportError:  # the package was installed without a C compiler, or not built yet
    ffi = None
    lib = None

__all__ = [
    "available",
    "gd_conv_float64",
    "gd_diagonal_float64",
    "gd_fc_float64",
    "gd_linear_extended",
    "gd_linear_float64",
    "gd_tensor_extended",
    "gd_tensor_float64",
]

# Return codes of the fb_ kernels, see csrc/fastbias.h.
_C_OK = 0
_C_DIVERGED = 1
_C_ERRORS: dict[int, tuple[type[Exception], str]] = {
    -1: (ValueError, "bad sizes or a missing array"),
    -2: (ValueError, "unknown loss code (expected 0 exponential or 1 logistic)"),
    -3: (ValueError, "unknown step-rule code (expected 0 fixed, 1 normalized, 2 loss-scaled)"),
    -4: (MemoryError, "out of memory for the work arrays"),
    -5: (RuntimeError, "kernel not available in this build (it needs GCC or clang)"),
}


def available() -> bool:
    """Whether the compiled extension ``fastbias._cext`` could be imported.

    Returns
    -------
    bool
        ``True`` if the C kernels can be called.
    """
    return lib is not None


def _translate(code: int, fail_step: int, kernel: str) -> tuple[int, int]:
    """Map a C return code to ``(status, fail_step)`` or raise; the only place codes are read.

    Parameters
    ----------
    code : int
        Return value of an ``fb_`` kernel.
    fail_step : int
        The step reported by the kernel through its ``fail_step`` pointer.
    kernel : str
        Name of the C function, for the error message.

    Returns
    -------
    status, fail_step : int, int
        ``STATUS_OK`` or ``STATUS_DIVERGED`` and the step number.

    Raises
    ------
    ValueError, MemoryError, RuntimeError
        For the negative codes (argument errors that the Python checks did not catch).
    """
    if code == _C_OK:
        return STATUS_OK, fail_step
    if code == _C_DIVERGED:
        return STATUS_DIVERGED, fail_step
    exc, what = _C_ERRORS.get(code, (RuntimeError, "unexpected return code"))
    raise exc(f"C kernel {kernel} failed with code {code}: {what}.")


def _check_double_range(Z: np.ndarray, kernel: str) -> None:
    """The long double kernels of csrc/fb_deep_ld.c and fb_conv_ld.c hold the data as exact
    double pairs: say so when an entry is past the float64 range (else the kernel's code -1
    reads as a layout error)."""
    if not np.all(np.abs(Z) <= np.finfo(np.float64).max):
        raise ValueError(
            f"{kernel}: the data Z have entries outside the float64 range (|z| > 1.8e308 or not "
            "finite); the extended-precision kernels hold the data as pairs of doubles."
        )


def _require_lib() -> Any:
    if lib is None:
        raise ImportError(
            "fastbias._cext is not built: reinstall fastbias with a C compiler available "
            "(pip install --force-reinstall --no-binary fastbias fastbias), or use the numba "
            "backend."
        )
    return lib


def _check_ld(
    name: str, a: Any, shape: tuple[int, ...], writeable: bool, dtype: Any = np.longdouble
) -> None:
    """Layout check (O(1)): the C side reads raw memory, so a wrong layout would corrupt it."""
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        got = type(a).__name__ if not isinstance(a, np.ndarray) else a.dtype
        what = "np.longdouble" if dtype == np.longdouble else np.dtype(dtype).name
        raise TypeError(f"{name} must be a numpy array of dtype {what}; got {got}.")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {a.shape}.")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass np.ascontiguousarray({name}).")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} is written in place and must be writeable.")


def _check_rec_steps(rec_steps: Any) -> int:
    """``rec_steps`` must be a C-contiguous 1-D int64 array; returns its length."""
    if not isinstance(rec_steps, np.ndarray) or rec_steps.dtype != np.int64 or rec_steps.ndim != 1:
        raise TypeError("rec_steps must be a 1-D numpy array of dtype int64.")
    if not rec_steps.flags.c_contiguous:
        raise ValueError("rec_steps must be C-contiguous.")
    return rec_steps.shape[0]


def _ld_scalar(x: Any) -> Any:
    """A cffi ``long double`` holding ``x`` without a detour through float64."""
    buf = np.array([x], dtype=np.longdouble)
    return ffi.cast("long double *", buf.ctypes.data)[0]


def gd_linear_extended(
    Z: np.ndarray,
    w: np.ndarray,
    lr: float | np.longdouble,
    loss: int,
    rule: int,
    step0: int,
    n_steps: int,
    rec_steps: np.ndarray,
    rec_w: np.ndarray,
    s_floor: float | np.longdouble,
) -> tuple[int, int]:
    """Gradient descent on a linear predictor in long double, in place (C kernel).

    Same arithmetic, arguments and results as ``_reference.gd_linear``, with every array in
    ``np.longdouble`` (80-bit extended precision on x86-64).

    Parameters
    ----------
    Z : (N, d) np.longdouble, C-contiguous
        Rows ``z_n = y_n x_n``.
    w : (d,) np.longdouble, C-contiguous
        The iterate ``w(step0)``; overwritten with the last good iterate.
    lr : float or np.longdouble
        Step size eta (an ``np.longdouble`` is passed on without rounding).
    loss : int
        0 exponential, 1 logistic.
    rule : int
        0 fixed ``eta_t = eta``; 1 normalized ``eta_t = eta / ||grad L||``;
        2 loss-scaled ``eta_t = eta / L(w)``.
    step0 : int
        Number of steps already taken (the step counter of ``w`` on entry).
    n_steps : int
        Steps to take.
    rec_steps : (K,) int64, C-contiguous
        Increasing step numbers in ``(step0, step0 + n_steps]``; after step ``rec_steps[k]``
        the iterate is copied into ``rec_w[k]``.
    rec_w : (K, d) np.longdouble, C-contiguous
        Output.
    s_floor : float or np.longdouble
        Divergence test: the run stops if the minimum margin of an iterate is not
        ``> s_floor`` (this also catches NaN and inf).

    Returns
    -------
    status, fail_step : int, int
        ``status`` is ``STATUS_OK`` (0) when all steps ran (``fail_step`` is then
        ``step0 + n_steps``); ``STATUS_DIVERGED`` (1) when the iterate of step ``fail_step``
        failed the divergence test (``w`` then holds that iterate and later records are not
        written).

    Raises
    ------
    ImportError
        If the extension was not built (see :func:`available`).
    TypeError, ValueError
        If an array has the wrong dtype, shape or layout, or a code is unknown.
    """
    c = _require_lib()
    if not isinstance(Z, np.ndarray) or Z.ndim != 2:
        raise ValueError("Z must be a 2-D numpy array of shape (N, d).")
    N, d = Z.shape
    _check_ld("Z", Z, (N, d), writeable=False)
    _check_ld("w", w, (d,), writeable=True)
    K = _check_rec_steps(rec_steps)
    _check_ld("rec_w", rec_w, (K, d), writeable=True)

    fail = ffi.new("long long *")
    code = c.fb_gd_linear_ld(
        ffi.cast("const long double *", Z.ctypes.data),
        ffi.cast("long double *", w.ctypes.data),
        N,
        d,
        _ld_scalar(lr),
        int(loss),
        int(rule),
        int(step0),
        int(n_steps),
        ffi.cast("const long long *", rec_steps.ctypes.data),
        K,
        ffi.cast("long double *", rec_w.ctypes.data),
        _ld_scalar(s_floor),
        fail,
    )
    return _translate(code, int(fail[0]), "fb_gd_linear_ld")


def gd_linear_float64(
    Z: np.ndarray,
    w: np.ndarray,
    lr: float,
    loss: int,
    rule: int,
    step0: int,
    n_steps: int,
    rec_steps: np.ndarray,
    rec_w: np.ndarray,
    s_floor: float,
    n_threads: int = 0,
    lo: np.ndarray | None = None,
) -> tuple[int, int]:
    """Gradient descent on a linear predictor in float64, in place (C kernel, SIMD + OpenMP).

    ``lo`` (float64, shape (d,)): the compensation term of ``w``; the updates are then summed
    with Neumaier compensation (``precision="compensated"``, serial).

    Same arguments and results as ``_reference.gd_linear`` up to round-off (iterates agree to
    about 1e-12 relative after 1000 steps: sums are taken in another order, multiply-adds are
    fused, and the log-domain shift is applied only when the margins leave +-300), plus
    ``n_threads``. The AVX2+FMA code is chosen at run time on CPUs that have it (the
    environment variable ``FASTBIAS_NO_AVX2=1`` forces the baseline x86-64 code).

    Parameters
    ----------
    Z : (N, d) float64, C-contiguous
        Rows ``z_n = y_n x_n``.
    w : (d,) float64, C-contiguous
        The iterate ``w(step0)``; overwritten with the last good iterate.
    lr : float
        Step size eta.
    loss : int
        0 exponential, 1 logistic.
    rule : int
        0 fixed ``eta_t = eta``; 1 normalized ``eta_t = eta / ||grad L||``;
        2 loss-scaled ``eta_t = eta / L(w)``.
    step0 : int
        Number of steps already taken (the step counter of ``w`` on entry).
    n_steps : int
        Steps to take.
    rec_steps : (K,) int64, C-contiguous
        Increasing step numbers in ``(step0, step0 + n_steps]``; after step ``rec_steps[k]``
        the iterate is copied into ``rec_w[k]``.
    rec_w : (K, d) float64, C-contiguous
        Output.
    s_floor : float
        Divergence test: the run stops if the minimum margin of an iterate is not
        ``> s_floor`` (this also catches NaN and inf).
    n_threads : int
        1: serial. ``> 1``: OpenMP threads (at most one per group of 256 samples: problems
        of one group run serially), one pass over the data and one barrier per step (two
        once the margins leave +-300). 0 (default): threads only when the problem is large
        enough for them to pay (one thread per ``3000 + 30 d`` of ``N * (d + 8)``, and at
        least 257 samples; two from ``N = 612`` at ``d = 2``, 257 at ``d = 100``), at most
        the OpenMP default count. Without OpenMP in the build, and in a forked child of a
        process that used the threads (GNU OpenMP does not survive ``fork``), every run is
        serial. The results do not depend on the thread count, bit for bit: the gradient is
        summed over groups of 256 samples added in a fixed tree, whatever the threads; and
        chunked calls (``step0 > 0``) reproduce one long call bit for bit.

    Returns
    -------
    status, fail_step : int, int
        ``STATUS_OK`` (0) when all steps ran (``fail_step`` is then ``step0 + n_steps``);
        ``STATUS_DIVERGED`` (1) when the iterate of step ``fail_step`` failed the divergence
        test (``w`` then holds that iterate and later records are not written). Unlike the
        reference, a non-finite iterate left by the last step is reported too (as
        ``fail_step = step0 + n_steps``): NaN is never returned with ``STATUS_OK``.

    Raises
    ------
    ImportError
        If the extension was not built (see :func:`available`).
    TypeError, ValueError
        If an array has the wrong dtype, shape or layout, a code is unknown or ``n_threads``
        is negative.
    """
    c = _require_lib()
    if not isinstance(Z, np.ndarray) or Z.ndim != 2:
        raise ValueError("Z must be a 2-D numpy array of shape (N, d).")
    N, d = Z.shape
    f64 = np.float64
    _check_ld("Z", Z, (N, d), writeable=False, dtype=f64)
    _check_ld("w", w, (d,), writeable=True, dtype=f64)
    K = _check_rec_steps(rec_steps)
    _check_ld("rec_w", rec_w, (K, d), writeable=True, dtype=f64)
    n_threads = int(n_threads)
    if n_threads < 0:
        raise ValueError(f"n_threads must be >= 0 (0: automatic); got {n_threads}.")
    lo_ptr = ffi.NULL
    if lo is not None:
        _check_ld("lo", lo, (d,), writeable=True, dtype=np.float64)
        lo_ptr = ffi.from_buffer("double[]", lo)

    fail = ffi.new("long long *")
    code = c.fb_gd_linear_f64(
        ffi.from_buffer("double[]", Z),  # (from_buffer: a quarter of ctypes.data + cast)
        ffi.from_buffer("double[]", w),
        N,
        d,
        float(lr),
        int(loss),
        int(rule),
        int(step0),
        int(n_steps),
        ffi.from_buffer("long long[]", rec_steps),
        K,
        ffi.from_buffer("double[]", rec_w),
        float(s_floor),
        fail,
        n_threads,
        lo_ptr,
    )
    return _translate(code, int(fail[0]), "fb_gd_linear_f64")


def gd_tensor_extended(
    Z: np.ndarray,
    theta: np.ndarray,
    jidx: np.ndarray,
    pos: np.ndarray,
    vals: np.ndarray,
    lr: Any,
    loss: int,
    rule: int,
    step0: int,
    n_steps: int,
    rec_steps: np.ndarray,
    rec_theta: np.ndarray,
    s_floor: Any,
) -> tuple[int, int]:
    """GD on a linear tensor network in long double (``fb_gd_tensor_ld`` in
    ``csrc/fb_deep_ld.c``: the contraction over the nonzeros, the data products in
    double-double on AVX2).

    The run of ``_reference.gd_model`` with the predictor and VJP of
    :class:`fastbias.models.Tensor`, in ``np.longdouble``: ``Z`` (N, d), ``theta`` (P,),
    ``rec_theta`` (K, P) and ``vals`` (nnz,) long double; ``jidx`` (nnz,) and ``pos``
    (nnz, L) int64, ``pos`` holding global positions into ``theta``. Exp or logistic loss.
    Returns ``(status, fail_step)`` as :func:`gd_linear_extended`.
    """
    c = _require_lib()
    N, d = Z.shape
    P = theta.shape[0]
    nnz, L = pos.shape
    _check_ld("Z", Z, (N, d), writeable=False)
    _check_double_range(Z, "fb_gd_tensor_ld")
    _check_ld("theta", theta, (P,), writeable=True)
    _check_ld("vals", vals, (nnz,), writeable=False)
    _check_ld("jidx", jidx, (nnz,), writeable=False, dtype=np.int64)
    _check_ld("pos", pos, (nnz, L), writeable=False, dtype=np.int64)
    K = _check_rec_steps(rec_steps)
    _check_ld("rec_theta", rec_theta, (K, P), writeable=True)
    fail = ffi.new("long long *")
    code = c.fb_gd_tensor_ld(
        ffi.cast("const long double *", Z.ctypes.data),
        ffi.cast("long double *", theta.ctypes.data),
        N, d, P, nnz, L,
        ffi.cast("const long long *", jidx.ctypes.data),
        ffi.cast("const long long *", pos.ctypes.data),
        ffi.cast("const long double *", vals.ctypes.data),
        _ld_scalar(lr), int(loss), int(rule), int(step0), int(n_steps),
        ffi.cast("const long long *", rec_steps.ctypes.data),
        K,
        ffi.cast("long double *", rec_theta.ctypes.data),
        _ld_scalar(s_floor),
        fail,
    )  # fmt: skip
    return _translate(code, int(fail[0]), "fb_gd_tensor_ld")


# ---- deep linear models in float64 (csrc/fb_deep_f64.c) ------------------------------------
# Return code 2 of these kernels: the parameters' norm passed 2**16; the caller goes on with
# the numba kernel from step ``fail_step`` (kernels._deep does).
STATUS_HANDOVER = 2


def _deep_call(name: str, *args: Any) -> tuple[int, int]:
    c = _require_lib()
    fail = ffi.new("long long *")
    code = getattr(c, name)(*args, fail)
    if code == STATUS_HANDOVER:
        return STATUS_HANDOVER, int(fail[0])
    if code == -6:
        raise ValueError(f"{name}: the logistic loss with the loss-scaled rule is not in C.")
    return _translate(code, int(fail[0]), name)


def _f64_ptr(name: str, a: Any, shape: tuple[int, ...], writeable: bool) -> Any:
    _check_ld(name, a, shape, writeable, dtype=np.float64)
    return ffi.from_buffer("double[]", a)  # (a quarter of the time of ctypes.data + cast)


def _i64_ptr(name: str, a: Any, shape: tuple[int, ...]) -> Any:
    _check_ld(name, a, shape, False, dtype=np.int64)
    return ffi.from_buffer("long long[]", a)


def _run_args(theta, rec_steps, rec_theta):
    K = _check_rec_steps(rec_steps)
    P = theta.shape[0] if isinstance(theta, np.ndarray) else 0
    return (
        _f64_ptr("theta", theta, (P,), True),
        K,
        _f64_ptr("rec_theta", rec_theta, (K, P), True),
        ffi.from_buffer("long long[]", rec_steps),
    )


def gd_diagonal_float64(Z, theta, depth, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
                        s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a depth-``depth`` diagonal network in float64 (``fb_gd_diagonal_f64``).

    The run of ``_numba_models.gd_diagonal`` with ``scale = 0`` and no compensation, up to
    round-off; exp or logistic loss (not logistic with rule 2). Returns ``(status, step)``
    with status 0, 1 (diverged at ``step``) or 2 (:data:`STATUS_HANDOVER`: continue with the
    numba kernel from ``step``).
    """
    N, d = Z.shape
    th, K, rec, rs = _run_args(theta, rec_steps, rec_theta)
    return _deep_call(
        "fb_gd_diagonal_f64", _f64_ptr("Z", Z, (N, d), False), th, N, d, int(depth),
        float(lr), int(loss), int(rule), int(step0), int(n_steps), rs, K, rec, float(s_floor),
    )  # fmt: skip


def gd_fc_float64(Z, theta, dims, offsets, lr, loss, rule, step0, n_steps, rec_steps,
                  rec_theta, s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a fully connected linear network in float64 (``fb_gd_fc_f64``); the run of
    ``_numba_models.gd_fully_connected`` as :func:`gd_diagonal_float64` is of its kernel."""
    N, d = Z.shape
    L = dims.shape[0]
    th, K, rec, rs = _run_args(theta, rec_steps, rec_theta)
    return _deep_call(
        "fb_gd_fc_f64", _f64_ptr("Z", Z, (N, d), False), th, N, d, L,
        _i64_ptr("dims", dims, (L,)), _i64_ptr("offsets", offsets, (L,)), float(lr), int(loss),
        int(rule), int(step0), int(n_steps), rs, K, rec, float(s_floor),
    )  # fmt: skip


def gd_tensor_float64(Z, theta, jidx, pos, vals, lr, loss, rule, step0, n_steps, rec_steps,
                      rec_theta, s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a linear tensor network in float64 (``fb_gd_tensor_f64``); ``pos`` (nnz, L)
    holds positions in ``theta``. The run of ``_numba_tensor.gd_tensor`` as
    :func:`gd_diagonal_float64` is of its kernel."""
    N, d = Z.shape
    nnz, L = pos.shape
    th, K, rec, rs = _run_args(theta, rec_steps, rec_theta)
    return _deep_call(
        "fb_gd_tensor_f64", _f64_ptr("Z", Z, (N, d), False), th, N, d, theta.shape[0], nnz,
        L, _i64_ptr("jidx", jidx, (nnz,)), _i64_ptr("pos", pos, (nnz, L)),
        _f64_ptr("vals", vals, (nnz,), False), float(lr), int(loss), int(rule), int(step0),
        int(n_steps), rs, K, rec, float(s_floor),
    )  # fmt: skip


def gd_conv_float64(ZF, theta, depth, spec, use_spec, lr, loss, rule, step0, n_steps,
                    rec_steps, rec_theta, s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a full-width circular convolutional network in the Fourier domain, float64
    (``fb_gd_conv_f64``): ``ZF`` (d, N) from ``_fft.real_fourier_rows``, ``spec``
    (depth, 2, d // 2 + 1) the filters' half spectra (read if ``use_spec``, kept). The run
    of ``_numba_conv.gd_convolutional`` as :func:`gd_diagonal_float64` is of its kernel."""
    d, N = ZF.shape
    th, K, rec, rs = _run_args(theta, rec_steps, rec_theta)
    return _deep_call(
        "fb_gd_conv_f64", _f64_ptr("ZF", ZF, (d, N), False), th, N, d, int(depth),
        _f64_ptr("spec", spec, (int(depth), 2, d // 2 + 1), True), int(bool(use_spec)),
        float(lr), int(loss), int(rule), int(step0), int(n_steps), rs, K, rec, float(s_floor),
    )  # fmt: skip


def gd_conv_extended(Z, theta, spec, use_spec, depth, lr, loss, rule, step0, n_steps,
                     rec_steps, rec_theta, s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a full-width circular convolutional network in long double, in the Fourier
    domain (``csrc/fb_conv_ld.c``): the run of ``_reference.gd_model`` with the model's
    time-domain predictor and VJP in ``np.longdouble``, to long double round-off. ``Z``
    (N, d), ``theta`` (depth d,), ``rec_theta`` (K, depth d) and ``spec`` (depth, 2,
    d // 2 + 1, the filters' half spectra: read if ``use_spec``, kept) are long double.
    Returns ``(status, fail_step)`` as :func:`gd_linear_extended`."""
    c = _require_lib()
    N, d = Z.shape
    P = theta.shape[0]
    _check_ld("Z", Z, (N, d), writeable=False)
    _check_double_range(Z, "fb_gd_conv_ld")
    _check_ld("theta", theta, (int(depth) * d,), writeable=True)
    _check_ld("spec", spec, (int(depth), 2, d // 2 + 1), writeable=True)
    K = _check_rec_steps(rec_steps)
    _check_ld("rec_theta", rec_theta, (K, P), writeable=True)
    fail = ffi.new("long long *")
    code = c.fb_gd_conv_ld(
        ffi.cast("const long double *", Z.ctypes.data),
        ffi.cast("long double *", theta.ctypes.data),
        ffi.cast("long double *", spec.ctypes.data), int(bool(use_spec)), N, d, int(depth),
        _ld_scalar(lr), int(loss), int(rule), int(step0), int(n_steps),
        ffi.cast("const long long *", rec_steps.ctypes.data), K,
        ffi.cast("long double *", rec_theta.ctypes.data), _ld_scalar(s_floor), fail,
    )  # fmt: skip
    return _translate(code, int(fail[0]), "fb_gd_conv_ld")


# ---- diagonal and fully connected networks in long double (csrc/fb_deep_ld.c) -------------


def _ld_ptr(name: str, a: Any, shape: tuple[int, ...], writeable: bool) -> Any:
    _check_ld(name, a, shape, writeable)
    return ffi.cast("long double *", a.ctypes.data)


def _ld_run_args(theta: Any, rec_steps: Any, rec_theta: Any) -> tuple[Any, int, Any, Any]:
    K = _check_rec_steps(rec_steps)
    P = theta.shape[0] if isinstance(theta, np.ndarray) else 0
    return (
        _ld_ptr("theta", theta, (P,), True),
        K,
        _ld_ptr("rec_theta", rec_theta, (K, P), True),
        ffi.cast("const long long *", rec_steps.ctypes.data),
    )


def gd_diagonal_extended(Z, theta, depth, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
                         s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a depth-``depth`` diagonal network ``beta = w_1 * .. * w_L`` (Yun et al. eq. 11)
    in long double, in factored form (``fb_gd_diagonal_ld``).

    The run of ``_reference.gd_model`` (Gunasekar et al. 2018, eq. 7) with the diagonal
    predictor and VJP in ``np.longdouble``, to long double round-off: ``Z`` (N, d), ``theta``
    (depth d,) and ``rec_theta`` (K, depth d) long double. Exp or logistic loss, rules 0-2.
    Returns ``(status, fail_step)`` as :func:`gd_linear_extended`.
    """
    c = _require_lib()
    N, d = Z.shape
    th, K, rec, rs = _ld_run_args(theta, rec_steps, rec_theta)
    if theta.shape[0] != int(depth) * d:
        raise ValueError(f"theta must have shape ({int(depth) * d},); got {theta.shape}.")
    _check_double_range(Z, "fb_gd_diagonal_ld")
    fail = ffi.new("long long *")
    code = c.fb_gd_diagonal_ld(
        _ld_ptr("Z", Z, (N, d), False), th, N, d, int(depth), _ld_scalar(lr), int(loss),
        int(rule), int(step0), int(n_steps), rs, K, rec, _ld_scalar(s_floor), fail,
    )  # fmt: skip
    return _translate(code, int(fail[0]), "fb_gd_diagonal_ld")


def gd_fc_extended(Z, theta, dims, offsets, lr, loss, rule, step0, n_steps, rec_steps,
                   rec_theta, s_floor) -> tuple[int, int]:  # fmt: skip
    """GD on a fully connected linear network ``beta = W_1 .. W_{L-1} w_L`` (Gunasekar et
    al. eq. 1) in long double, in factored form (``fb_gd_fc_ld``).

    The run of ``_reference.gd_model`` (Gunasekar et al. 2018, eq. 7) with the network's
    predictor and VJP in ``np.longdouble``, to long double round-off. ``dims`` (L,) int64
    (``dims[0] = d``) and ``offsets`` (L,) int64 as :func:`gd_fc_float64`; ``Z``, ``theta``
    and ``rec_theta`` long double. Returns ``(status, fail_step)`` as
    :func:`gd_linear_extended`.
    """
    c = _require_lib()
    N, d = Z.shape
    L = dims.shape[0]
    th, K, rec, rs = _ld_run_args(theta, rec_steps, rec_theta)
    _check_double_range(Z, "fb_gd_fc_ld")
    fail = ffi.new("long long *")
    code = c.fb_gd_fc_ld(
        _ld_ptr("Z", Z, (N, d), False), th, N, d, theta.shape[0], L,
        _i64_ptr("dims", dims, (L,)), _i64_ptr("offsets", offsets, (L,)), _ld_scalar(lr),
        int(loss), int(rule), int(step0), int(n_steps), rs, K, rec, _ld_scalar(s_floor), fail,
    )  # fmt: skip
    return _translate(code, int(fail[0]), "fb_gd_fc_ld")


def exp_f64_check(x: Any, which: int, repeats: int = 1) -> np.ndarray | None:
    """``exp(max(x, -708))`` by the float64 kernels' vector exp (``fb_exp_f64_check``):
    ``which`` 0 ``fb_exp`` (baseline copy), 1 ``fb_exp`` (AVX2+FMA copy), 2 ``fb_exp_fma``;
    the pass over ``x`` is made ``repeats`` times (for timing). ``None`` where that copy does
    not run (no AVX2/FMA, or no C extension). ``x`` is padded to whole vectors."""
    if not available():
        return None
    c = _require_lib()
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.shape[0]
    m = -(-n // 4) * 4
    padded, out = empty_aligned((m,)), empty_aligned((m,))  # (no load crosses a cache line)
    padded[n:] = 0.0
    padded[:n] = x
    code = c.fb_exp_f64_check(
        _f64_ptr("x", padded, padded.shape, False), _f64_ptr("out", out, out.shape, True),
        padded.shape[0], int(repeats), int(which),
    )  # fmt: skip
    if code == -5:
        return None
    if code != 0:
        raise ValueError(f"fb_exp_f64_check: bad arguments (which={which}, repeats={repeats}).")
    return out[:n]


def fp_peak_check(iters: int, which: int = 0) -> float | None:
    """Run ``iters`` iterations of 10 independent 4-lane multiply-add chains and, ``which``
    1: 4 chains of adds, 2: 4 chains of maxima beside them (``fb_fp_peak_check``), for timing
    the core's throughput (``bench/lockstep_bound.py``). Returns the chains' sum, or ``None``
    without AVX2/FMA or the C extension."""
    if not available():
        return None
    c = _require_lib()
    out = ffi.new("double *")
    code = c.fb_fp_peak_check(int(iters), int(which), out)
    if code == -5:
        return None
    if code != 0:
        raise ValueError(f"fb_fp_peak_check: bad arguments (iters={iters}, which={which}).")
    return float(out[0])


def dd_exp_check(xh: Any, xl: Any) -> tuple[Any, Any] | None:
    """``e^(xh + xl)`` (x <= 0) as exact double pairs ``(qh, ql)`` from the double-double
    exponential of the extended-precision exp-loss weights (``fb_dd_exp_check``, for the
    tests), or ``None`` where that code does not run (no AVX2/FMA, or no C extension)."""
    if not available():
        return None
    c = _require_lib()
    xh = np.ascontiguousarray(xh, dtype=np.float64)
    xl = np.ascontiguousarray(xl, dtype=np.float64)
    n = xh.shape[0]
    qh, ql = np.zeros(n), np.zeros(n)
    code = c.fb_dd_exp_check(
        _f64_ptr("xh", xh, (n,), False), _f64_ptr("xl", xl, (n,), False),
        n, _f64_ptr("qh", qh, (n,), True), _f64_ptr("ql", ql, (n,), True),
    )  # fmt: skip
    if code == -5:
        return None
    if code != 0:
        raise MemoryError("fb_dd_exp_check could not allocate its scratch.")
    return qh, ql
