"""numba kernels for linear tensor networks ``f(x) = M(x) o (v_1, ..., v_L)`` (Yun et al. eq. 6).

The data tensor ``M(x) = sum_j x_j M_j`` is stored as COO nonzeros ``(j, i_1, ..., i_L, val)``:
``jidx`` (nnz,) int64, ``multi`` (nnz, L) int64 and ``vals`` (nnz,) float64. The layers
``v_1, ..., v_L`` are the slices ``theta[offsets[l] : offsets[l] + k_l]`` of the flat
parameter vector. With this storage (Yun Section 2, multilinear multiplication)

    beta_j = M_j o (v_1, ..., v_L) = sum_{nonzeros (j, i)} val * prod_l v_l[i_l],

    [M(u) o (v_1, .., I_{k_l}, .., v_L)][i_l]
        = sum_{nonzeros (j, i)} u_j * val * prod_{k != l} v_k[i_k],

the second being the gradient formula of Yun Section 3 (with ``u = -X^T r``), computed for every
``l`` in one pass with prefix/suffix products per nonzero (a direct two-factor loop for
L = 2). Cost: ``O(nnz * L)`` per step. :func:`gd_tensor` converts ``multi`` once per call into
positions ``pos[n, l] = offsets[l] + i_l`` in ``theta``.

:func:`gd_tensor` runs the loop of ``_numba_models.gd_loop`` (the specification is
``_reference.gd_model``) with :func:`tensor_beta` and :func:`tensor_grad`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba import _FAST
from ._numba_models import gd_loop


@njit(nogil=True, cache=True)
def global_positions(multi, offsets):
    """``pos[n, l] = offsets[l] + i_l(n)``: the index of ``v_l[i_l]`` in ``theta``."""
    nnz, L = multi.shape
    pos = np.empty((nnz, L), dtype=np.int64)
    for n in range(nnz):
        for layer in range(L):
            pos[n, layer] = offsets[layer] + multi[n, layer]
    return pos


@njit(nogil=True, cache=True, fastmath=_FAST)
def _predictor_pos(jidx, pos, vals, theta, beta):
    nnz, L = pos.shape
    for j in range(beta.shape[0]):
        beta[j] = 0.0
    if L == 2:
        for n in range(nnz):
            beta[jidx[n]] += vals[n] * theta[pos[n, 0]] * theta[pos[n, 1]]
        return
    for n in range(nnz):
        p = vals[n]
        for layer in range(L):
            p *= theta[pos[n, layer]]
        beta[jidx[n]] += p


@njit(nogil=True, cache=True, fastmath=_FAST)
def _vjp_pos(jidx, pos, vals, u, theta, out, pre):
    """All layers at once: ``out[pos[n, l]] += u_j val prod_{k<l} v_k * prod_{k>l} v_k``."""
    nnz, L = pos.shape
    for i in range(out.shape[0]):
        out[i] = 0.0
    if L == 2:
        for n in range(nnz):
            w = u[jidx[n]] * vals[n]
            a = pos[n, 0]
            b = pos[n, 1]
            va = theta[a]
            out[a] += w * theta[b]
            out[b] += w * va
        return
    for n in range(nnz):
        p = u[jidx[n]] * vals[n]
        for layer in range(L):
            pre[layer] = p
            p *= theta[pos[n, layer]]
        s = 1.0
        for layer in range(L - 1, -1, -1):
            idx = pos[n, layer]
            out[idx] += pre[layer] * s
            s *= theta[idx]


@njit(nogil=True, cache=True)
def tensor_predictor(jidx, multi, vals, offsets, theta, beta):
    """``beta_j = M_j o (v_1, ..., v_L)`` (Yun eq. 6, ``f(x) = x.beta``), written into ``beta``."""
    _predictor_pos(jidx, global_positions(multi, offsets), vals, theta, beta)


@njit(nogil=True, cache=True, fastmath=_FAST)
def contract(jidx, multi, vals, offsets, u, theta, skip, out):
    """``M(u) o (v_1, .., I_{k_l}, .., v_L)`` for ``l = skip``, or for every ``l`` if ``skip < 0``.

    Parameters
    ----------
    jidx, multi, vals : COO nonzeros of ``M`` (see the module docstring).
    offsets : (L,) int64, start of ``v_l`` in ``theta``.
    u : (d,) the vector fed to the data tensor (``G = Z^T q`` in a GD step).
    theta : flat ``v_1, ..., v_L``.
    skip : layer ``l`` (0-based) left uncontracted; ``-1`` for all layers at once.
    out : (k_skip,) for ``skip >= 0``; for ``skip < 0`` an array laid out like ``theta``,
        receiving ``d<u, beta>/dv_l`` in the slot of ``v_l`` (the VJP ``J_P(theta)^T u``).
        Overwritten.
    """
    nnz, L = multi.shape
    if skip < 0:
        _vjp_pos(jidx, global_positions(multi, offsets), vals, u, theta, out, np.empty(L))
        return
    for i in range(out.shape[0]):
        out[i] = 0.0
    for n in range(nnz):
        p = u[jidx[n]] * vals[n]
        for layer in range(L):
            if layer != skip:
                p *= theta[offsets[layer] + multi[n, layer]]
        out[multi[n, skip]] += p


@njit(inline="always")
def tensor_beta(theta, model, beta):
    """The predictor for ``_numba_models.gd_loop``; ``model = (jidx, pos, vals, pre)`` with
    ``pos`` from :func:`global_positions` and ``pre`` scratch of length L."""
    jidx, pos, vals, _ = model
    _predictor_pos(jidx, pos, vals, theta, beta)


@njit(inline="always")
def tensor_grad(theta, model, G, g):
    """The VJP for ``_numba_models.gd_loop``: ``g = d<G, beta>/dtheta``."""
    jidx, pos, vals, pre = model
    _vjp_pos(jidx, pos, vals, G, theta, g, pre)


@njit(nogil=True, cache=True)
def gd_tensor(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
              scale, rec_scale, lo, jidx, multi, vals, offsets):  # fmt: skip
    """GD on a linear tensor network ``beta = M(.) o (v_1, ..., v_L)`` (Yun eq. 6).

    Same arguments and semantics as ``_reference.gd_model`` without the two callables, plus the
    COO data tensor ``(jidx, multi, vals)`` and the layer ``offsets`` into ``theta``;
    ``theta = 2**scale[0] * theta_s`` as in ``_numba_models.gd_diagonal``.
    """
    model = (jidx, global_positions(multi, offsets), vals, np.empty(multi.shape[1]))
    return gd_loop(
        Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
        rec_scale, lo, multi.shape[1], tensor_beta, tensor_grad, model,
    )  # fmt: skip
