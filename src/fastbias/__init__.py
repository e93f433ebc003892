"""fastbias: the implicit bias of gradient descent, computed fast, exactly and verifiably.

Compiled gradient-descent runs (:func:`train`, :func:`flow`, :func:`train_batch`), exact
reference solvers (:func:`max_margin`, :func:`min_norm`, :mod:`fastbias.references`),
certificates (:func:`stationarity`, :mod:`fastbias.analysis`) and the diagnostics that tie
them together (:mod:`fastbias.diagnostics`).
"""

from . import analysis, datasets, diagnostics, losses, models, references
from ._sweep import sweep
from .exceptions import (
    CheckpointError,
    DivergenceError,
    FastbiasError,
    NotSeparableError,
    SolverError,
)
from .optim import (
    History,
    Run,
    RunSpec,
    flow,
    resume,
    resume_softmax_network,
    train,
    train_batch,
    train_multiclass,
    train_softmax_network,
)
from .references import (
    MarginSolution,
    MaxMarginSolution,
    implicit_regularizer,
    max_margin,
    min_norm,
    predicted_limit,
    q_minimizer,
    stationarity,
    stationary_point_near,
    tensor_singular_vectors,
    two_layer_limit_point,
)

__version__ = "0.1.0"

# scikit-learn estimators, importable from the top level without importing scikit-learn
# with fastbias (``pip install "fastbias[sklearn]"``)
_LAZY = {
    "GradientDescentClassifier": "sklearn",
    "GradientDescentRegressor": "sklearn",
    "MaxMarginClassifier": "sklearn",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fastbias' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "train",
    "train_batch",
    "resume",
    "flow",
    "train_multiclass",
    "train_softmax_network",
    "resume_softmax_network",
    "sweep",
    "max_margin",
    "min_norm",
    "predicted_limit",
    "stationarity",
    "stationary_point_near",
    "implicit_regularizer",
    "tensor_singular_vectors",
    "q_minimizer",
    "two_layer_limit_point",
    "MaxMarginSolution",
    "MarginSolution",
    "Run",
    "RunSpec",
    "History",
    "FastbiasError",
    "NotSeparableError",
    "DivergenceError",
    "SolverError",
    "CheckpointError",
    "analysis",
    "datasets",
    "diagnostics",
    "losses",
    "models",
    "references",
    "__version__",
]
