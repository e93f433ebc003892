"""The ``"loss-scaled-backtracking"`` step rule: a runner over ``_numba_backtrack``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models import Model
from ..models._base import Runner, unscale
from ..models.registry import gradient_data

__all__ = ["GROWTH", "backtracking_runner"]

GROWTH = 2.0**0.125  # eta grows by this after every step that lowered the loss


def backtracking_runner(
    model: Model, data: np.ndarray, targets: np.ndarray, loss: int, growth: float = GROWTH
) -> Runner:
    """``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor, scale, rec_scale)``
    for loss-scaled steps with backtracking growth (``lr`` is the initial ``eta``).

    ``data`` is ``Z = y x`` (or X for the squared loss) for the linear-predictor models, and X
    for a :class:`~fastbias.models.Network` (``targets`` then holds the labels). The rule's
    state (current ``eta``, the last accepted point and its log-loss) is kept by the runner
    and carried through checkpoints by ``run.get_state`` / ``run.set_state``.
    """
    from ..kernels import _numba_backtrack as nb

    kind, ZT, ints, offsets, pos, jidx, vals, net = gradient_data(model, data)
    tc = np.ascontiguousarray(targets, dtype=np.float64)
    bt = np.zeros(nb.BT_SIZE)
    prev: list[Any] = [None]
    depth = int(model.depth)

    def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor, scale=None,
            rec_scale=None):  # fmt: skip
        own = scale is None
        if own:
            scale = np.zeros(1, dtype=np.int64)
            rec_scale = np.zeros(len(rec_steps), dtype=np.int64)
        if bt[nb.BT_ETA] == 0.0:
            bt[nb.BT_ETA], bt[nb.BT_ETA_EXP] = lr, 0.0
        if prev[0] is None or prev[0].shape != theta.shape:
            prev[0] = np.zeros_like(theta)
        out = nb.gd_backtracking(
            kind, theta, ZT, tc, loss, ints, offsets, pos, jidx, vals, net, depth, growth, bt,
            prev[0], step0, n_steps, rec_steps, rec_theta, floor, scale, rec_scale,
        )  # fmt: skip
        if own:
            unscale(theta, scale, rec_theta, rec_scale)
        return out

    def set_state(saved: dict) -> None:
        saved_bt = np.asarray(saved["bt"], dtype=np.float64)
        bt[...] = 0.0
        bt[: saved_bt.size] = saved_bt  # (states saved before BT_ETA_EXP have exponent 0)
        prev[0] = None if saved["theta_prev"] is None else saved["theta_prev"].copy()

    run.scaled = True
    run.get_state = lambda: {
        "bt": bt.copy(),
        "theta_prev": None if prev[0] is None else prev[0].copy(),
    }
    run.set_state = set_state
    run.eta = lambda: float(_ldexp_inf(bt[nb.BT_ETA], int(bt[nb.BT_ETA_EXP])))
    return run


def _ldexp_inf(mant: float, ex: int) -> float:
    """``mant * 2**ex`` (inf past float64, where eta for the linear model may grow)."""
    with np.errstate(over="ignore"):
        return float(np.ldexp(mant, ex))
