"""Parameterizations ``beta = P(theta)`` of linear predictors, trained by :func:`fastbias.train`."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import ConvergenceCondition, Model
from .convolutional import Convolutional
from .diagonal import Diagonal
from .fully_connected import FullyConnected
from .linear import Linear
from .low_rank import LowRank
from .network import Network
from .registry import get_model
from .tensor import Tensor

__all__ = [
    "Model",
    "Linear",
    "FullyConnected",
    "Diagonal",
    "Convolutional",
    "Tensor",
    "Network",
    "LowRank",
    "ConvergenceCondition",
    "convergence_condition",
    "get_model",
]


def convergence_condition(
    model: Model | str,
    init: Sequence[np.ndarray] | Any,
    d: int | None = None,
    task: str = "classification",
) -> ConvergenceCondition | None:
    """Evaluate the sufficient initial condition of Yun et al. (2021) for ``model`` at ``init``.

    ``init`` is a list of layer arrays (initial directions, or the initial parameters: the
    conditions are homogeneous). Theorem 2 / Corollaries 2-3 for classification, Theorem 5 /
    Theorem 7.1 for regression. Returns None when the architecture has no such condition.
    """
    mdl = get_model(model)
    params = [np.asarray(p, dtype=np.float64) for p in init]
    if d is None:
        d = int(np.asarray(params[0]).shape[0])
    mdl.init_params(d, params)  # validates shapes
    return mdl.convergence_condition(params, task)
