"""Classification losses of margins ``u = y f(x)``, with values and gradients in log domain.

Soudry et al. (2018), Assumptions 2-3: both losses are smooth, decreasing, and have a tight
exponential tail with ``a = c = 1``. Totals ``L = sum_n l(u_n)`` are reported as ``log L`` so a
run whose margins are in the thousands still has a meaningful loss value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._validation import check_choice
from .kernels import LOSS_CODES
from .kernels._reference import loss_weights


def logsumexp(a: np.ndarray) -> float:
    """``log sum exp(a)`` shifted by the maximum, so it neither overflows nor underflows."""
    a = np.asarray(a, dtype=np.float64)
    top = a.max()
    if not math.isfinite(top):
        return float(top)
    return float(top + np.log(np.exp(a - top).sum()))


def expit(u: np.ndarray) -> np.ndarray:
    """The logistic sigmoid ``1/(1 + exp(-u))`` without overflow."""
    u = np.asarray(u, dtype=np.float64)
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


__all__ = ["Loss", "exponential", "logistic", "get_loss", "log_total_loss", "gradient_weights"]


@dataclass(frozen=True)
class Loss:
    """A margin loss ``l(u)``; ``code`` is the integer the kernels use."""

    name: str
    code: int

    def value(self, u: np.ndarray) -> np.ndarray:
        """``l(u)``: ``exp(-u)`` or ``log1p(exp(-u))`` (``logaddexp(0, -u)``, exact for all u)."""
        u = np.asarray(u, dtype=np.float64)
        if self.code == 0:
            return np.exp(-u)
        return np.logaddexp(0.0, -u)

    def derivative(self, u: np.ndarray) -> np.ndarray:
        """``l'(u)``: ``-exp(-u)`` or ``-expit(-u) = -1/(1+exp(u))``."""
        u = np.asarray(u, dtype=np.float64)
        if self.code == 0:
            return -np.exp(-u)
        return -expit(-u)

    def log_value(self, u: np.ndarray) -> np.ndarray:
        """``log l(u)`` without underflow: ``-u``, or ``log(log1p(exp(-u)))`` computed stably."""
        u = np.asarray(u, dtype=np.float64)
        if self.code == 0:
            return -u
        # log(log1p(e^-u)) = -u + log(log1p(x)/x) with x = e^-u, for u > 0.
        out = np.empty_like(u)
        pos = u > 0
        with np.errstate(under="ignore"):
            x = np.exp(-u[pos])
        ratio = np.where(x > 1e-300, np.log1p(x) / np.where(x > 1e-300, x, 1.0), 1.0)
        out[pos] = -u[pos] + np.log(ratio)
        out[~pos] = np.log(np.logaddexp(0.0, -u[~pos]))
        return out


exponential = Loss("exp", LOSS_CODES["exp"])
logistic = Loss("logistic", LOSS_CODES["logistic"])
_LOSSES = {"exp": exponential, "exponential": exponential, "logistic": logistic}


def get_loss(loss: str | Loss) -> Loss:
    """Look a loss up by name (``"exp"``, ``"exponential"``, ``"logistic"``)."""
    if isinstance(loss, Loss):
        return loss
    return _LOSSES[check_choice(loss, "loss", list(_LOSSES))]


def log_total_loss(margins: np.ndarray, loss: str | Loss) -> float:
    """``log sum_n l(m_n)``: for exp loss ``-m_min + log sum exp(-(m_n - m_min))`` (issue spec)."""
    return float(logsumexp(get_loss(loss).log_value(np.asarray(margins, dtype=np.float64))))


def gradient_weights(margins: np.ndarray, loss: str | Loss) -> tuple[float, np.ndarray]:
    """``-l'(m_n) = exp(log_scale) * q_n`` with bounded ``q`` (see ``kernels._reference``)."""
    return loss_weights(np.asarray(margins, dtype=np.float64), get_loss(loss).code)
