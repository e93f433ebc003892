"""Every model kind in one table: the names it has, the precisions its GD kernel runs in, and
how it is written into a checkpoint and read back.

Adding a model kind is one line in :data:`MODELS` (see CONTRIBUTING.md for the other places:
the model class, its kernel and its reference test). The table is what :func:`get_model`
parses names with, what :func:`fastbias.optim.spec.build_spec` checks precisions against and
what :mod:`fastbias.optim.checkpoint` uses to store a model as JSON plus arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._base import Model
from .convolutional import Convolutional
from .diagonal import Diagonal
from .fully_connected import FullyConnected
from .linear import Linear
from .low_rank import LowRank
from .network import Network
from .tensor import Tensor

__all__ = [
    "ModelEntry",
    "MODELS",
    "get_model",
    "model_entry",
    "gradient_data",
    "models_with_precision",
    "model_config",
    "model_from_config",
]

ALL = ("float64", "compensated", "extended")
NO_EXTENDED = ("float64", "compensated")


@dataclass(frozen=True)
class ModelEntry:
    """One model kind.

    Attributes
    ----------
    cls : type
        The :class:`~fastbias.models.Model` subclass.
    names : tuple of str
        Lower-case names :func:`get_model` accepts (``"diag"``, ``"diagonal"``).
    syntax : str
        How a name is written, for error messages (``"diag[:L]"``); empty for no name.
    parse : callable or None
        ``parse(ints)`` -> model for the integers after the colon of a name (``"fc:50,20"`` ->
        ``[50, 20]``), or None when they do not fit.
    precisions : tuple of str
        The precisions of the model's own GD kernel (:meth:`Model.runner`). ``"extended"``
        is for the exponential and logistic losses.
    """

    cls: type
    names: tuple[str, ...]
    syntax: str
    parse: Callable[[list[int]], Model | None] | None
    precisions: tuple[str, ...]


def _linear(ints: list[int]) -> Model | None:
    return None if ints else Linear()


def _widths(ints: list[int]) -> Model | None:
    return FullyConnected(ints) if ints else None


def _low_rank(ints: list[int]) -> Model | None:
    if len(ints) == 1:
        return LowRank(ints[0])
    return LowRank(ints[0], ints[1:]) if len(ints) == 3 else None


def _depth(cls: type) -> Callable[[list[int]], Model | None]:
    def parse(ints: list[int]) -> Model | None:
        return cls(ints[0] if ints else 2) if len(ints) <= 1 else None

    return parse


#: The model kinds. Columns: class, names, name syntax, parser, precisions of its GD kernel.
MODELS: list[ModelEntry] = [
    ModelEntry(Linear, ("linear",), "linear", _linear, ALL),
    ModelEntry(Diagonal, ("diag", "diagonal"), "diag[:L]", _depth(Diagonal), ALL),
    ModelEntry(
        FullyConnected, ("fc", "fully-connected", "fully_connected"), "fc:W1,W2,...", _widths, ALL
    ),
    ModelEntry(Convolutional, ("conv", "convolutional"), "conv[:L]", _depth(Convolutional), ALL),
    ModelEntry(Tensor, (), "", None, ALL),
    ModelEntry(Network, (), "", None, NO_EXTENDED),
    ModelEntry(LowRank, ("lowrank", "low-rank", "low_rank"), "lowrank:r[,d1,d2]", _low_rank, ALL),
]


def _by_name() -> dict[str, ModelEntry]:
    return {name: e for e in MODELS for name in e.names}


def get_model(model: Any) -> Model:
    """A model instance from an instance or a name.

    Names: ``"linear"``; ``"fc:50"`` or ``"fc:50,20"`` (:class:`FullyConnected` with those
    hidden widths); ``"diag"``/``"diag:L"`` (:class:`Diagonal`, depth 2 by default);
    ``"conv"``/``"conv:L"`` (full-width :class:`Convolutional`, depth 2 by default); and the
    other names of :data:`MODELS`. Long names (``"diagonal"``, ``"convolutional"``,
    ``"fully-connected"``) work too.
    """
    if isinstance(model, Model):
        return model
    names = ", ".join(repr(e.syntax) for e in MODELS if e.syntax)
    expected = (
        "a fastbias.models.Model (Linear(), FullyConnected(widths), Diagonal(depth), ...) or "
        f"a name: {names}"
    )
    if not isinstance(model, str):
        raise ValueError(f"Unknown model {model!r}; expected {expected}.")
    name, _, arg = model.strip().lower().partition(":")
    entry = _by_name().get(name)
    try:
        ints = [int(a) for a in arg.split(",")] if arg else []
    except ValueError:
        entry = None
    out = entry.parse(ints) if entry is not None and entry.parse is not None else None
    if out is None:
        raise ValueError(f"Unknown model {model!r}; expected {expected}.")
    return out


def model_entry(model: Model) -> ModelEntry:
    """The table row of ``model``'s class (or of its nearest registered base class)."""
    for cls in type(model).__mro__:
        for e in MODELS:
            if e.cls is cls:
                return e
    raise ValueError(
        f"{type(model).__name__} is not in fastbias.models.registry.MODELS; add a ModelEntry "
        "line for it (see CONTRIBUTING.md)."
    )


def models_with_precision(precision: str) -> list[str]:
    """Names of the model classes whose GD kernel runs in ``precision``."""
    return [e.cls.__name__ for e in MODELS if precision in e.precisions]


def gradient_data(model: Model, Z: np.ndarray) -> tuple:
    """``model.gradient_data(Z)`` for a model of a class in :data:`MODELS` (exactly: a
    subclass may change the predictor its parent's compiled gradient computes, so it must be
    registered itself)."""
    if not any(e.cls is type(model) for e in MODELS):
        names = [e.cls.__name__ for e in MODELS]
        raise ValueError(
            f"flow, the optimizers and the backtracking rule have compiled gradients for "
            f"{', '.join(names[:-1])} and {names[-1]} (the classes of "
            f"fastbias.models.registry.MODELS); got {model!r} of class "
            f"{type(model).__name__}, which is not in that table."
        )
    return model.gradient_data(Z)


def _exact_entry(model: Model) -> ModelEntry:
    for e in MODELS:
        if e.cls is type(model):
            return e
    raise ValueError(
        f"{type(model).__name__} is not in fastbias.models.registry.MODELS, so it cannot be "
        "written to a checkpoint; add a ModelEntry line for it (see CONTRIBUTING.md)."
    )


def _encode(value: Any) -> Any:
    if isinstance(value, Model):
        return model_config(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"cannot store a model argument of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "model" in value and "config" in value:
        return model_from_config(value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def model_config(model: Model) -> dict[str, Any]:
    """``{"model": class name, "config": {...}}``: JSON values and NumPy arrays (nested
    models are nested dicts of the same form)."""
    entry = _exact_entry(model)
    return {
        "model": entry.cls.__name__,
        "config": {k: _encode(v) for k, v in model.config().items()},
    }


def model_from_config(config: dict[str, Any]) -> Model:
    """The model a :func:`model_config` dict describes."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ValueError(f"not a model description: {config!r:.200}")
    for e in MODELS:
        if e.cls.__name__ == config.get("model"):
            args = {k: _decode(v) for k, v in config["config"].items()}
            return e.cls.from_config(args)
    raise ValueError(f"unknown model kind {config.get('model')!r}")
