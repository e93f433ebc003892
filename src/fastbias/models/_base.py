"""The protocol every model follows (lookup by name is in :mod:`fastbias.models.registry`).

A model is a parameterization ``beta = P(theta)`` of a linear predictor ``f(x) = x.beta``
(Gunasekar et al. 2018, eq. 4; Yun et al. 2021, eq. 6). ``theta`` is a list of arrays, one per
layer; kernels see it flattened (layers one after another, each in C order).
"""

from __future__ import annotations

import functools
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor) -> (status, fail_step)
Runner = Callable[..., tuple[int, int]]


@dataclass(frozen=True)
class ConvergenceCondition:
    """A sufficient initial condition for the loss to go to zero, and whether it holds.

    ``margin`` is the lambda of Yun et al. Theorem 2 (or the analogous quantity of the theorem
    named in ``theorem``); the condition holds when ``margin > 0``.
    """

    margin: float
    holds: bool
    theorem: str
    detail: str = ""


class Model(ABC):
    """A parameterization ``beta = P(theta)``; subclasses define the layer shapes, the
    predictor and its vector-Jacobian product (NumPy references), and the compiled run kernel.

    ``depth`` is L, the homogeneity order: ``P(c theta) = c**L P(theta)``.
    """

    name: str = "model"
    depth: int = 1

    # ---- structure -------------------------------------------------------------------------
    @abstractmethod
    def shapes(self, d: int) -> list[tuple[int, ...]]:
        """Shapes of the layers for inputs of dimension ``d`` (raises ValueError if invalid)."""

    def n_params(self, d: int) -> int:
        return sum(math.prod(s) for s in self.shapes(d))

    def flatten(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """The flat parameter vector the kernels use."""
        return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in params])

    def unflatten(self, theta: np.ndarray, d: int) -> list[np.ndarray]:
        """Layers from a flat vector (views into ``theta``)."""
        out, pos = [], 0
        for s in self.shapes(d):
            size = math.prod(s)
            out.append(theta[pos : pos + size].reshape(s))
            pos += size
        return out

    # ---- the map P and its derivative (NumPy references) ----------------------------------
    @abstractmethod
    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``beta = P(theta)``."""

    @abstractmethod
    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        """``J_P(theta)^T G``: the gradient of ``<G, P(theta)>`` with respect to every layer."""

    def _predictor_of_theta(self, theta: np.ndarray, d: int) -> np.ndarray | None:
        """:meth:`predictor` of the flat float64 parameter vector ``theta``, the same numbers
        computed without splitting it into layers, for models whose predictor reads the flat
        layout; None (the default) when there is no such shortcut."""
        return None

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        """``P`` at every row of ``thetas`` (K, n), as a (K, d) array in the rows' dtype: the
        batch form of :meth:`predictor` that histories use (equal to it up to round-off).
        The default calls :meth:`predictor` once per row; models override it."""
        thetas = np.asarray(thetas)
        out = np.empty((thetas.shape[0], d), dtype=thetas.dtype)
        for k, th in enumerate(thetas):
            out[k] = self.predictor(self.unflatten(th, d))
        return out

    def layer_norms_rows(self, thetas: np.ndarray, d: int) -> np.ndarray:
        """The Euclidean norm of every layer at every row of ``thetas``: (K, number of
        layers), in the rows' dtype; each layer scaled by its largest entry first, so that
        neither overflows nor underflows (as ``diagnostics.norm``)."""
        thetas = np.asarray(thetas)
        shapes = self.shapes(d)
        if thetas.shape[0] == 0:
            return np.zeros((0, len(shapes)), dtype=thetas.dtype)
        offsets = layer_offsets(shapes)
        sizes = [math.prod(s) for s in shapes]
        a = np.abs(thetas)
        top = np.maximum.reduceat(a, offsets, axis=1)
        safe = np.where(top > 0, top, 1)
        scaled = a / np.repeat(safe, sizes, axis=1)
        return np.sqrt(np.add.reduceat(scaled * scaled, offsets, axis=1)) * top

    def margins(self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``y_n f(x_n)``."""
        return y * (np.asarray(X) @ self.predictor(params))

    def layer_norms(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """Euclidean (Frobenius) norm of every layer."""
        return np.array([np.linalg.norm(np.ravel(p)) for p in params])

    def normalized_margin(
        self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray
    ) -> float:
        """``min_n y_n f(x_n) / ||theta||**L``, the homogeneity-aware margin."""
        theta_norm = float(np.linalg.norm(self.flatten(params)))
        return float(self.margins(params, X, y).min() / theta_norm**self.depth)

    # ---- initialization -------------------------------------------------------------------
    def init_params(
        self, d: int, init: Any = None, init_scale: float = 1.0, seed: int | None = 0
    ) -> list[np.ndarray]:
        """Initial layers: a list of arrays (one per layer), or a named scheme.

        ``"gaussian"`` (default for deep models): seeded standard normal entries divided by
        ``sqrt(layer size)`` (unit-order layer norms). ``"yun"``: Yun et al.'s
        ``v_l(0) = alpha * v_bar_l`` with seeded Gaussian ``v_bar_l`` for ``l < L`` and
        ``v_bar_L = 0``. ``"zeros"``: all zero (a saddle for deep models). The directions are
        multiplied by ``init_scale`` (``alpha``) in every case, also when given as arrays.
        """
        shapes = self.shapes(d)
        if init is None:
            init = self.default_init
        if isinstance(init, str):
            if init == "zeros":
                params = [np.zeros(s) for s in shapes]
            elif init in ("gaussian", "yun"):
                params = list(_gaussian_layers(tuple(shapes), seed))
                if init == "yun":
                    params[-1] = np.zeros(shapes[-1])
            else:
                raise ValueError(
                    f"Unknown init {init!r}; expected a list of arrays or one of "
                    "'gaussian', 'yun', 'zeros'."
                )
        else:
            if isinstance(init, np.ndarray) and len(shapes) == 1:
                init = [init]
            init = list(init)
            if len(init) != len(shapes):
                raise ValueError(
                    f"init has {len(init)} arrays but {self!r} has {len(shapes)} layers."
                )
            params = []
            for layer, (arr, shape) in enumerate(zip(init, shapes, strict=True)):
                try:
                    arr = np.array(arr, dtype=np.float64)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"init layer {layer + 1} must be a numeric array; got {type(arr)}."
                    ) from None
                arr = self._init_layer(layer, arr, tuple(shape), d)
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"init layer {layer + 1} contains NaN or inf.")
                params.append(arr)
        return [p * float(init_scale) for p in params]

    default_init: str = "gaussian"

    def _init_layer(self, layer: int, arr: np.ndarray, shape: tuple, d: int) -> np.ndarray:
        """One layer of a user's ``init`` in the layout of :meth:`shapes`.

        Accepted: that shape; a flat vector of the same size (C order); the same array with
        singleton axes added or dropped (``(h, 1)`` for ``(h,)``); and what
        :meth:`_natural_layer` maps (a model's other natural layout). Otherwise a
        ValueError saying which layouts are expected.
        """
        size = int(np.prod(shape))
        if arr.shape == shape:
            return arr
        if arr.size == size and (
            arr.ndim == 1
            or tuple(n for n in arr.shape if n != 1) == tuple(n for n in shape if n != 1)
        ):
            return arr.reshape(shape)
        natural = self._natural_layer(layer, arr, d)
        if natural is not None:
            return natural
        layouts = [str(shape), f"a flat vector of {size} entries"] + self._natural_layouts(layer, d)
        raise ValueError(
            f"init layer {layer + 1} has shape {arr.shape}; expected {', or '.join(layouts)}."
        )

    def _natural_layer(self, layer: int, arr: np.ndarray, d: int) -> np.ndarray | None:
        """Another natural layout of layer ``layer`` mapped to :meth:`shapes`, or None."""
        return None

    def _natural_layouts(self, layer: int, d: int) -> list[str]:
        """The layouts :meth:`_natural_layer` accepts, for error messages."""
        return []

    # ---- theory ----------------------------------------------------------------------------
    def convergence_condition(
        self, params: Sequence[np.ndarray], task: str = "classification"
    ) -> ConvergenceCondition | None:
        """The sufficient initial condition (Yun et al. 2021) for the loss to go to zero from
        ``params``, for ``task`` in {"classification", "regression"}; None when none is known."""
        return None

    # ---- compiled runs ---------------------------------------------------------------------
    @abstractmethod
    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        """A callable running whole chunks of GD steps in compiled code (see module doc)."""

    def gradient_data(self, Z: np.ndarray) -> tuple:
        """``(kind, ZT, ints, offsets, pos, jidx, vals, net)``: the arguments of the generic
        compiled gradient ``kernels._numba_flow.model_gradient`` for data ``Z`` (``y x``, or
        ``X`` for the squared loss and for networks), on which gradient flow, the optimizers
        other than GD and the backtracking step rule run. Build it with :func:`kernel_data`.
        Models without a generic gradient raise ValueError (the default)."""
        raise ValueError(
            f"{self!r} has no generic compiled gradient (Model.gradient_data), so gradient "
            "flow, the optimizers other than 'gd' and step_rule='loss-scaled-backtracking' "
            "cannot run it."
        )

    # ---- checkpoints ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments: JSON values, NumPy arrays or nested models (what
        :mod:`fastbias.models.registry` writes into a checkpoint). Default: none."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """The model :meth:`config` describes."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def generic_runner(kernel, Z, targets, loss, extra=(), compensated=False) -> Runner:
    """Bind a ``_numba_models`` kernel to its data.

    ``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor, scale=None,
    rec_scale=None)``: with ``scale`` (int64 array of length 1) ``theta`` holds ``theta_s``
    and the true parameters are ``2**scale[0] * theta_s`` (the kernel rescales exactly by
    powers of two to keep norms representable); ``rec_scale`` receives the exponents of the
    recorded rows. Without them, ``theta`` and the rows are returned unscaled.
    ``compensated``: the kernel sums the updates with a compensation term kept by the runner
    (``run.get_state``/``set_state`` carry it through checkpoints).
    """
    Zc = np.ascontiguousarray(Z, dtype=np.float64)
    tc = np.ascontiguousarray(targets, dtype=np.float64)
    lo = [np.zeros(0)]

    def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor, scale=None,
            rec_scale=None):  # fmt: skip
        own = scale is None
        if own:
            scale = np.zeros(1, dtype=np.int64)
            rec_scale = np.zeros(len(rec_steps), dtype=np.int64)
        if compensated and lo[0].shape[0] != theta.shape[0]:
            lo[0] = np.zeros(theta.shape[0])
        out = kernel(
            Zc, tc, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, scale,
            rec_scale, lo[0], *extra,
        )  # fmt: skip
        if own:
            unscale(theta, scale, rec_theta, rec_scale)
        return out

    def set_state(saved: dict) -> None:
        lo[0] = np.array(saved["lo"], dtype=np.float64)

    run.scaled = True
    if compensated:
        run.get_state = lambda: {"lo": lo[0].copy()}
        run.set_state = set_state
    return run


def _gaussian_layers(shapes: tuple, seed: Any) -> tuple[np.ndarray, ...]:
    """Seeded standard normal layers divided by ``sqrt(layer size)``; the same draws for the
    same shapes and integer seed are computed once (read-only; callers scale them into new
    arrays)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return _gaussian_layers_cached(shapes, int(seed))
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s) / math.sqrt(math.prod(s)) for s in shapes)


@functools.lru_cache(maxsize=64)
def _gaussian_layers_cached(shapes: tuple, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    # (math.sqrt of the size: the correctly rounded square root np.sqrt(np.prod(s)) gave,
    # without the array round trips, ~5 us a layer on a sweep's every new seed)
    out = tuple(rng.standard_normal(s) / math.sqrt(math.prod(s)) for s in shapes)
    for a in out:
        a.setflags(write=False)
    return out


def kernel_data(kind: int, Z: np.ndarray, *, ZT=None, ints=None, offsets=None, pos=None,
                jidx=None, vals=None, net=None) -> tuple:  # fmt: skip
    """The tuple :meth:`Model.gradient_data` returns, with empty defaults for what the model
    kind does not use (``ZT`` defaults to ``Z^T``, C-contiguous float64)."""
    from ..kernels._numba_flow import dummy_net

    i64 = np.int64
    return (
        kind,
        np.ascontiguousarray(Z.T, dtype=np.float64) if ZT is None else ZT,
        np.zeros(1, dtype=i64) if ints is None else np.asarray(ints, dtype=i64),
        np.zeros(1, dtype=i64) if offsets is None else np.asarray(offsets, dtype=i64),
        np.zeros((1, 1), dtype=i64) if pos is None else pos,
        np.zeros(1, dtype=i64) if jidx is None else jidx,
        np.zeros(1) if vals is None else vals,
        dummy_net() if net is None else net,
    )


def layer_offsets(shapes: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Where each layer starts in the flat ``theta``."""
    return np.array([0, *itertools.accumulate(math.prod(s) for s in shapes)][:-1], np.int64)


def unscale(theta, scale, rec_theta, rec_scale) -> None:
    """Multiply scaled parameters back by ``2**scale`` in place (inf where not representable)."""
    if scale[0] != 0:
        theta[...] = np.ldexp(theta, int(scale[0]))
    if len(rec_scale) and np.any(rec_scale):
        rec_theta[...] = np.ldexp(rec_theta, rec_scale[: len(rec_theta), None])
