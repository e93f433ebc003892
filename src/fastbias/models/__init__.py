"""Parameterizations ``beta = P(theta)`` of linear predictors, trained by :func:`fastbias.train`."""

from ._base import Model, get_model
from .linear import Linear

__all__ = ["Model", "Linear", "get_model"]
