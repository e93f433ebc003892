"""fastbias: the implicit bias of gradient descent, computed fast, exactly and verifiably.

Compiled gradient-descent runs (:func:`train`), exact reference solvers (:func:`max_margin`),
and the diagnostics that tie the two together (:mod:`fastbias.diagnostics`).
"""

from . import datasets, diagnostics, losses, models
from .exceptions import DivergenceError, FastbiasError, NotSeparableError, SolverError
from .optim import History, Run, resume, train, train_batch
from .references import MaxMarginSolution, max_margin

__version__ = "0.1.0"

__all__ = [
    "train",
    "train_batch",
    "resume",
    "max_margin",
    "MaxMarginSolution",
    "Run",
    "History",
    "FastbiasError",
    "NotSeparableError",
    "DivergenceError",
    "SolverError",
    "datasets",
    "diagnostics",
    "losses",
    "models",
    "__version__",
]
