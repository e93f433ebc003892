"""Deep-model GD kernels: the C float64 kernels (``csrc/fb_deep_f64.c``) where they apply, the
numba kernels otherwise.

Each function here has the signature of the numba kernel of the same name (``_numba_models``,
``_numba_tensor``, ``_numba_conv``) and runs the same steps. The C kernel is used for float64
runs (no compensation) with the exponential or logistic loss (not logistic with the
loss-scaled rule) while the parameters are unscaled (``scale[0] == 0``; convolutional: every
layer full width). When the parameters' norm passes ``2**16`` the C kernel stops and the numba
kernel takes the rest of the call: it then carries ``theta = 2**e theta_s``, which scales
exactly, so that hand-over changes nothing but the speed. ``FASTBIAS_BACKEND=numba`` in the
environment forces the numba kernels (the fallback and the tests' second opinion).
"""

from __future__ import annotations

import os

import numpy as np

from . import _numba_conv, _numba_models, _numba_tensor

__all__ = ["c_eligible", "gd_convolutional", "gd_diagonal", "gd_fully_connected", "gd_tensor"]


_C: list = []  # the _c module once imported (a relative import costs ~1 us a call)


def _c_module():
    if os.environ.get("FASTBIAS_BACKEND", "auto") == "numba":
        return None
    if not _C:
        from . import _c

        _C.append(_c)
    _c = _C[0]
    if not _c.available() or not hasattr(_c.lib, "fb_gd_diagonal_f64"):
        return None
    return _c


def c_eligible(loss: int, rule: int, lo: np.ndarray, scale: np.ndarray):
    """The ``_c`` module if this call can run in the C kernel, else None."""
    if loss not in (0, 1) or (loss == 1 and rule == 2) or rule not in (0, 1, 2):
        return None
    if lo.shape[0] != 0 or scale[0] != 0:
        return None
    return _c_module()


def _rest(code, step, step0, n_steps, rec_steps, rec_scale):
    """After a C call: None if it finished, else (step0, n_steps, first record row) of the
    numba call that takes over (only called after a C call: ``_C`` holds the module)."""
    if code != _C[0].STATUS_HANDOVER:
        return None
    k = int(np.searchsorted(rec_steps, step, side="right"))
    rec_scale[:k] = 0
    return step, step0 + n_steps - step, k


def gd_diagonal(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
                scale, rec_scale, lo, depth):  # fmt: skip
    """``_numba_models.gd_diagonal``, in C when :func:`c_eligible`."""
    c = c_eligible(loss, rule, lo, scale)
    if c is not None:
        code, step = c.gd_diagonal_float64(
            Z, theta, depth, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor
        )
        rest = _rest(code, step, step0, n_steps, rec_steps, rec_scale)
        if rest is None:
            return code, step
        step0, n_steps, k = rest
        rec_steps, rec_theta, rec_scale = rec_steps[k:], rec_theta[k:], rec_scale[k:]
    return _numba_models.gd_diagonal(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, depth,
    )  # fmt: skip


def gd_fully_connected(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
                       floor, scale, rec_scale, lo, dims, offsets):  # fmt: skip
    """``_numba_models.gd_fully_connected``, in C when :func:`c_eligible`."""
    c = c_eligible(loss, rule, lo, scale)
    if c is not None:
        code, step = c.gd_fc_float64(
            Z, theta, dims, offsets, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor
        )
        rest = _rest(code, step, step0, n_steps, rec_steps, rec_scale)
        if rest is None:
            return code, step
        step0, n_steps, k = rest
        rec_steps, rec_theta, rec_scale = rec_steps[k:], rec_theta[k:], rec_scale[k:]
    return _numba_models.gd_fully_connected(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, dims, offsets,
    )  # fmt: skip


def gd_tensor(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
              scale, rec_scale, lo, jidx, multi, vals, offsets):  # fmt: skip
    """``_numba_tensor.gd_tensor``, in C when :func:`c_eligible`."""
    c = c_eligible(loss, rule, lo, scale)
    if c is not None:
        pos = np.ascontiguousarray(multi + offsets[None, :], dtype=np.int64)
        code, step = c.gd_tensor_float64(
            Z, theta, jidx, pos, vals, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
            floor,
        )  # fmt: skip
        rest = _rest(code, step, step0, n_steps, rec_steps, rec_scale)
        if rest is None:
            return code, step
        step0, n_steps, k = rest
        rec_steps, rec_theta, rec_scale = rec_steps[k:], rec_theta[k:], rec_scale[k:]
    return _numba_tensor.gd_tensor(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, jidx, multi, vals, offsets,
    )  # fmt: skip


def gd_convolutional(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
                     floor, scale, rec_scale, ZF, ksizes, spec, use_spec, lo_spec,
                     lo_theta):  # fmt: skip
    """``_numba_conv.gd_convolutional``, in C when :func:`c_eligible` and every layer is full
    width."""
    d = ZF.shape[0]
    c = c_eligible(loss, rule, lo_theta, scale)
    if c is not None and bool(np.all(ksizes == d)):
        code, step = c.gd_conv_float64(
            ZF, theta, ksizes.shape[0], spec, use_spec, lr, loss, rule, step0, n_steps,
            rec_steps, rec_theta, floor,
        )  # fmt: skip
        rest = _rest(code, step, step0, n_steps, rec_steps, rec_scale)
        if rest is None:
            return code, step
        step0, n_steps, k = rest
        rec_steps, rec_theta, rec_scale = rec_steps[k:], rec_theta[k:], rec_scale[k:]
        use_spec = True  # the spectra are the state the C kernel left
    return _numba_conv.gd_convolutional(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, ZF, ksizes, spec, use_spec, lo_spec, lo_theta,
    )  # fmt: skip
