"""The linear predictor ``f(x) = w.x`` (Soudry et al. 2018, eq. 2.1)."""

from __future__ import annotations

import numpy as np

from ._base import Model


class Linear(Model):
    """``beta = w``: one layer, homogeneous of degree 1."""

    name = "linear"
    degree = 1

    def predictor(self, params: list[np.ndarray]) -> np.ndarray:
        """``beta = w`` for ``params = [w]``."""
        (w,) = params
        return np.asarray(w)
