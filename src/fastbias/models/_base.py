"""The small protocol every model follows, and lookup by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Model(ABC):
    """A parameterization ``beta = P(theta)`` of a linear predictor ``f(x) = beta.x``.

    Subclasses define :meth:`predictor` and the compiled run kernels the engine dispatches to.
    ``degree`` is the homogeneity order L of ``P`` (``P(c theta) = c**L P(theta)``), used for
    homogeneity-aware metrics such as the normalized margin ``min_n y_n f(x_n)/||theta||**L``.
    """

    name: str = "model"
    degree: int = 1

    @abstractmethod
    def predictor(self, params: list[np.ndarray]) -> np.ndarray:
        """The predictor ``beta`` of ``f(x) = beta.x`` for the given parameters."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def get_model(model: Any) -> Model:
    """A model instance from an instance or a name (``"linear"``)."""
    from .linear import Linear

    if isinstance(model, Model):
        return model
    names = {"linear": Linear}
    if isinstance(model, str) and model in names:
        return names[model]()
    expected = ", ".join(repr(n) for n in sorted(names))
    raise ValueError(
        f"Unknown model {model!r}; expected a fastbias.models.Model or one of {expected}."
    )
