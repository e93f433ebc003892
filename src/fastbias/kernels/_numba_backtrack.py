"""GD with loss-scaled steps and backtracking growth, for every model kind of ``_numba_flow``.

The step size ``eta_t / L(theta_t)`` of the loss-scaled rule, with ``eta_t`` adapted as in the
margin-maximization analyses of homogeneous networks (Lyu & Li 2020; Nacson et al. 2019):
after a step that lowered the loss, ``eta`` grows by ``growth``; a step that raised it is
undone (``theta`` goes back to where it was) and ``eta`` is halved, also when the step blew
the loss past the divergence test. A rejected step counts as a step. The parameters are
carried as ``theta = 2**scale * theta_s`` as in ``_numba_models``, so the geometric growth
these steps produce never overflows, and so is ``eta`` itself: ``eta = 2**bt[BT_ETA_EXP] *
bt[BT_ETA]`` (for the linear model ``eta`` grows with ``||theta||`` without bound, past
float64 within ~8200 steps).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba_flow import make_network_workspace, make_workspace, model_gradient
from ._numba_models import record_scaled, rescale, squared_norm

# Slots of the state array ``bt``: eta = 2**bt[BT_ETA_EXP] * bt[BT_ETA].
BT_ETA, BT_PREV_LOG_LOSS, BT_HAVE_PREV, BT_PREV_SCALE, BT_ETA_EXP = range(5)
BT_SIZE = 5


@njit(nogil=True, cache=True)
def _renormalize_eta(bt):
    """Move the binary exponent of ``bt[BT_ETA]`` into ``bt[BT_ETA_EXP]`` (exact)."""
    mant, ex = math.frexp(bt[BT_ETA])
    if ex != 0 and mant != 0.0:
        bt[BT_ETA] = mant
        bt[BT_ETA_EXP] += ex


@njit(nogil=True, cache=True)
def gd_backtracking(
    kind, theta, ZT, targets, loss, ints, offsets, pos, jidx, vals, net, depth, growth, bt,
    theta_prev, step0, n_steps, rec_steps, rec_theta, floor, scale, rec_scale,
):  # fmt: skip
    """Run ``n_steps`` steps; ``bt`` (``BT_SIZE``,) and ``theta_prev`` hold the rule's state
    between calls (``bt[BT_ETA]``: the current ``eta``). Returns ``(status, fail_step)``."""
    d, N = ZT.shape
    ws, cs = make_workspace(kind, N, d, ints, pos)
    nws = make_network_workspace(net, N)
    g = np.empty(theta.shape[0])
    k = 0
    for t in range(step0, step0 + n_steps):
        ok, ls, lsum = model_gradient(
            kind, theta, ZT, targets, loss, 2, scale[0] * depth, floor, ints, offsets, pos,
            jidx, vals, ws, cs, g, net, nws,
        )  # fmt: skip
        bad = not ok or not lsum > 0.0  # the step blew the loss up (or NaN)
        log_loss = np.inf if bad else ls + math.log(lsum)
        if bt[BT_HAVE_PREV] != 0.0 and (bad or log_loss > bt[BT_PREV_LOG_LOSS]):
            for i in range(theta.shape[0]):  # undo the last step
                theta[i] = theta_prev[i]
            scale[0] = int(bt[BT_PREV_SCALE])
            bt[BT_ETA] *= 0.5
            _renormalize_eta(bt)
        elif bad:
            return STATUS_DIVERGED, t
        else:
            for i in range(theta.shape[0]):
                theta_prev[i] = theta[i]
            bt[BT_PREV_SCALE] = scale[0]
            bt[BT_PREV_LOG_LOSS] = log_loss
            bt[BT_HAVE_PREV] = 1.0
            n2 = squared_norm(g)
            if not n2 < np.inf:
                return STATUS_DIVERGED, t
            # eta / L in the scaled coordinates: 2**(e (L - 2)) eta / L, one exponent
            c = math.ldexp(bt[BT_ETA] / lsum, int(scale[0] * (depth - 2) + bt[BT_ETA_EXP]))
            for i in range(theta.shape[0]):
                theta[i] += c * g[i]
            t2 = squared_norm(theta)
            if t2 < np.inf:
                rescale(theta, t2, scale)
            bt[BT_ETA] *= growth
            _renormalize_eta(bt)
        k = record_scaled(theta, t + 1, k, rec_steps, rec_theta, scale, rec_scale)
    return STATUS_OK, step0 + n_steps
