"""Linear circular convolutional networks (Gunasekar et al. 2018 eqs. 2-3; Yun et al. 2021 eq. 12).

Layer ``l < L`` maps ``h -> h * w_l`` with the circular cross-correlation

    (h * w)[i] = sum_{p < k_l} w[p] h[(i + p) mod d]        (Gunasekar eq. 2, 0-indexed)

and the output is ``f(x) = h_{L-1} . w_L`` (eq. 3), with ``w_l in R^{k_l}`` (``k_l <= d``) for
``l < L`` and ``w_L in R^d``. The network is linear in ``x``: ``f(x) = x . beta`` with
``beta = P(w)``, and in the Fourier domain (Lemma 3) ``beta_hat = prod_l w_hat_l`` where
``w_hat_l`` is the DFT of ``w_l`` zero-padded to length ``d``.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from ._base import ConvergenceCondition, Model, Runner, kernel_data, layer_offsets, unscale
from ._layouts import convolutional_layout, extended_tensor_runner


@functools.lru_cache(maxsize=64)
def _shifts(k: int, d: int) -> np.ndarray:
    """``idx[p, i] = (i - p) mod d`` for ``p < k``: ``v[idx[p]]`` equals ``np.roll(v, p)``."""
    idx = (np.arange(d)[None, :] - np.arange(k)[:, None]) % d
    idx.setflags(write=False)
    return idx


_SMALL = 1 << 15  # entries of the (K, k, d) products formed at once


def _adjoint_layer(w: np.ndarray, v: np.ndarray, d: int) -> np.ndarray:
    """``A^T v = sum_p w[p] roll(v, p)`` for every row of ``w`` (K, k) and ``v`` (K, d),
    summed over ``p`` in increasing order: as one reduction over the middle axis of the
    products when they are few (NumPy adds along a non-contiguous axis in index order, so
    the sums are the loop's, bit for bit), otherwise tap by tap."""
    shifts = _shifts(w.shape[1], d)  # v[:, shifts[p]] is np.roll(v, p, axis=1)
    if w.shape[0] * w.shape[1] * d <= _SMALL:
        return np.sum(w[:, :, None] * v[:, shifts], axis=1)
    out = np.zeros_like(v)
    for p in range(w.shape[1]):
        out += w[:, p, None] * v[:, shifts[p]]
    return out


@functools.lru_cache(maxsize=64)
def _offsets_with_end(widths: tuple[int, ...]) -> np.ndarray:
    """``[0, k_1, k_1 + k_2, ..., sum k_l]`` (int64, read-only)."""
    out = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    out.setflags(write=False)
    return out


_KERNEL: list = []
_KERNELS: list = []


def _conv_predictors():
    """``kernels._numba_conv_predictor.conv_predictors`` (imported on first use)."""
    if not _KERNEL:
        from ..kernels._numba_conv_predictor import conv_predictors

        _KERNEL.append(conv_predictors)
    return _KERNEL[0]


def _kernels():
    """``(kernels._deep.gd_convolutional, kernels._fft.real_fourier_rows,
    kernels._fft.empty_aligned)``, imported on first use (not per call: a relative import
    costs ~1 us, and a 10-step run made three)."""
    if not _KERNELS:
        from ..kernels._deep import gd_convolutional
        from ..kernels._fft import empty_aligned, real_fourier_rows

        _KERNELS.append((gd_convolutional, real_fourier_rows, empty_aligned))
    return _KERNELS[0]


_SPECTRA: OrderedDict[tuple, np.ndarray] = OrderedDict()
_SPECTRA_LOCK = threading.Lock()


def _fourier_rows_once(Zc: np.ndarray, transform) -> np.ndarray:
    """``transform(Zc)`` (the rows' half spectra, ``real_fourier_rows``), computed once per
    data set: the last 8 results for data of at most 1 MiB are kept, keyed by the bytes of
    ``Zc`` (compared exactly), and each call gets its own aligned copy."""
    if Zc.nbytes > 1 << 20:
        return transform(Zc)
    key = (Zc.shape, Zc.tobytes())
    with _SPECTRA_LOCK:
        kept = _SPECTRA.get(key)
        if kept is not None:
            _SPECTRA.move_to_end(key)
    if kept is None:
        kept = transform(Zc)
        with _SPECTRA_LOCK:
            _SPECTRA[key] = kept.copy()
            while len(_SPECTRA) > 8:
                _SPECTRA.popitem(last=False)
    out = _kernels()[2](kept.shape)  # (the kernels' vector loops want aligned rows)
    out[...] = kept
    return out


_COROLLARY3: OrderedDict[tuple, ConvergenceCondition] = OrderedDict()


def _corollary3(layers: np.ndarray) -> ConvergenceCondition:
    """Yun et al. Corollary 3 for full-width layers (L, d): ``lambda = min_{l<L, j}
    |F w_l|_j^2 - |F w_L|_j^2`` with the unitary DFT. The last 64 results are kept, keyed by
    the layers' bytes: runs that start from the same initialization (a sweep over step sizes
    or data sets) pay the FFT once."""
    key = (layers.shape, layers.tobytes())
    with _SPECTRA_LOCK:
        kept = _COROLLARY3.get(key)
    if kept is not None:
        return kept
    d = layers.shape[1]
    F = np.abs(np.fft.fft(layers, axis=1) / np.sqrt(d)) ** 2
    lam = float(np.min(F[:-1] - F[-1]))
    out = ConvergenceCondition(lam, lam > 0, "Yun et al. 2021, Corollary 3")
    with _SPECTRA_LOCK:
        _COROLLARY3[key] = out
        while len(_COROLLARY3) > 64:
            _COROLLARY3.popitem(last=False)
    return out


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


class Convolutional(Model):
    """Depth-L linear circular convolutional network.

    Parameters
    ----------
    depth : int
        ``L >= 1``, the number of layers (``L - 1`` convolutions and the output layer).
        ``Convolutional(1)`` is the linear model.
    kernel_sizes : sequence of int, optional
        Filter lengths ``k_1, ..., k_{L-1}`` of the convolutional layers, each in ``[1, d]``
        (checked against ``d`` in :meth:`shapes`); ``None`` means full width, ``k_l = d``
        (Gunasekar et al.'s setting). The output layer always has ``k_L = d``.

    Notes
    -----
    With full-width filters GD is biased towards the DFT-domain ``l_{2/L}`` max-margin direction
    (Gunasekar et al. Theorems 2-2a; Yun et al. Corollary 3): the DFT-domain ``l_1`` max-margin
    direction for ``L = 2``. With ``k_1 = 1`` (``L = 2``) it is the ``l_2`` direction, with
    ``k_1 = 2`` a filtered version of the data (Yun et al. Corollary 4).
    """

    name = "convolutional"

    def __init__(self, depth: int = 2, kernel_sizes: Sequence[int] | None = None):
        if not _is_int(depth) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}.")
        self.depth = int(depth)
        if kernel_sizes is None:
            self.kernel_sizes: tuple[int, ...] | None = None
            return
        if isinstance(kernel_sizes, (str, bytes)) or _is_int(kernel_sizes):
            raise ValueError(
                f"kernel_sizes must be a sequence of {self.depth - 1} integers or None; "
                f"got {kernel_sizes!r}."
            )
        sizes = list(kernel_sizes)
        if len(sizes) != self.depth - 1:
            raise ValueError(
                f"kernel_sizes must give one size per convolutional layer: {self.depth - 1} "
                f"for depth {self.depth} (the output layer has size d); got {len(sizes)} "
                f"({kernel_sizes!r})."
            )
        for layer, k in enumerate(sizes):
            if not _is_int(k) or k < 1:
                raise ValueError(
                    f"kernel size of layer {layer + 1} must be an integer >= 1; got {k!r}."
                )
        self.kernel_sizes = tuple(int(k) for k in sizes)

    # ---- structure -------------------------------------------------------------------------
    def kernel_widths(self, d: int) -> list[int]:
        """``[k_1, ..., k_{L-1}, d]``; raises ValueError if some ``k_l`` is not in ``[1, d]``."""
        if type(d) is int and d >= 1:  # (the usual call, checked in a few comparisons)
            if self.kernel_sizes is None:
                return [d] * self.depth
            if max(self.kernel_sizes, default=1) <= d:
                return [*self.kernel_sizes, d]
        if not _is_int(d) or d < 1:
            raise ValueError(f"the input dimension d must be an integer >= 1; got {d!r}.")
        d = int(d)
        if self.kernel_sizes is None:
            return [d] * self.depth
        for layer, k in enumerate(self.kernel_sizes):
            if not 1 <= k <= d:
                raise ValueError(
                    f"kernel size {k} of layer {layer + 1} is not in [1, d] for inputs of "
                    f"dimension d = {d}."
                )
        return [*self.kernel_sizes, d]

    def shapes(self, d: int) -> list[tuple[int, ...]]:
        """``[(k_1,), ..., (k_{L-1},), (d,)]`` (Yun eq. 12)."""
        return [(k,) for k in self.kernel_widths(d)]

    def is_full_width(self, d: int) -> bool:
        """Whether every filter has length ``d`` (Yun et al.'s *full-length* network)."""
        return all(k == d for k in self.kernel_widths(d))

    def _layers(self, params: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
        layers = [np.asarray(p, dtype=np.float64).ravel() for p in params]
        if len(layers) != self.depth:
            raise ValueError(f"expected {self.depth} layers; got {len(layers)}.")
        d = layers[-1].shape[0]
        expected = self.kernel_widths(d)
        got = [w.shape[0] for w in layers]
        if got != expected:
            raise ValueError(f"layer sizes {got} do not match {expected} for d = {d}.")
        return layers, d

    # ---- the map P and its derivative (time-domain NumPy references) ----------------------
    def predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """``beta = P(w)`` with ``f(x) = x . beta`` for the network of Gunasekar eq. 3.

        The layer map ``A_l h = h * w_l = sum_p w_l[p] roll(h, -p)`` has the adjoint
        ``A_l^T v = sum_p w_l[p] roll(v, p)``, so ``f(x) = <A_{L-1} .. A_1 x, w_L>`` gives
        ``beta = A_1^T .. A_{L-1}^T w_L``.
        """
        layers, d = self._layers(params)
        if self.depth > 1:  # (compiled: the sums of _adjoint_layer, bit for bit)
            theta = np.concatenate(layers)[None, :]
            return _conv_predictors()(theta, _offsets_with_end(tuple(self.kernel_widths(d))), d)[0]
        return layers[-1].copy()

    def _predictor_of_theta(self, theta: np.ndarray, d: int) -> np.ndarray | None:
        """:meth:`predictor` of the flat ``theta``: a float64 vector goes to the compiled loop
        as it is (the row :meth:`predictor` forms by concatenating the layers again)."""
        theta = np.asarray(theta)
        widths = self.kernel_widths(d)
        if self.depth > 1 and theta.dtype == np.float64 and theta.shape == (sum(widths),):
            return _conv_predictors()(
                np.ascontiguousarray(theta)[None, :], _offsets_with_end(tuple(widths)), d
            )[0]
        return None

    def predictors(self, thetas: np.ndarray, d: int) -> np.ndarray:
        """:meth:`predictor` for every row at once (the same sums, in the same order): float64
        rows by the compiled loop ``kernels._numba_conv_predictor``, others (long double) by
        :meth:`predictors_numpy`."""
        thetas = np.asarray(thetas)
        if thetas.dtype != np.float64 or thetas.ndim != 2 or thetas.shape[0] == 0:
            return self.predictors_numpy(thetas, d)
        offsets = _offsets_with_end(tuple(self.kernel_widths(d)))
        return _conv_predictors()(thetas, offsets, d)

    def predictors_numpy(self, thetas: np.ndarray, d: int) -> np.ndarray:
        """:meth:`predictors` in NumPy (:func:`_adjoint_layer`, layer by layer): the
        specification of the compiled loop, and the path of long double rows."""
        thetas = np.asarray(thetas)
        widths = self.kernel_widths(d)
        offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        v = thetas[:, offsets[-2] : offsets[-1]].copy()
        for layer in range(self.depth - 2, -1, -1):
            v = _adjoint_layer(thetas[:, offsets[layer] : offsets[layer + 1]], v, d)
        return v

    def vjp(self, params: Sequence[np.ndarray], G: np.ndarray) -> list[np.ndarray]:
        """``d<G, P(w)>/d w_l`` for every layer, by backpropagation through eq. 3.

        ``<G, beta> = f(G)``: run the network on ``G``, ``h_0 = G``, ``h_l = h_{l-1} * w_l``;
        with ``u_l = A_{l+1}^T .. A_{L-1}^T w_L`` (so ``f(G) = <h_l, u_l>``) the gradients
        are ``d/dw_l[p] = <roll(h_{l-1}, -p), u_l>`` for ``l < L`` and ``d/dw_L = h_{L-1}``.
        """
        layers, _ = self._layers(params)
        G = np.asarray(G, dtype=np.float64)
        h = [G]
        for w in layers[:-1]:
            out = np.zeros_like(G)
            for p in range(w.shape[0]):
                out += w[p] * np.roll(h[-1], -p)
            h.append(out)
        grads: list[np.ndarray] = [h[-1].copy()]
        u = layers[-1]
        for layer in range(self.depth - 2, -1, -1):
            w = layers[layer]
            grads.insert(0, np.array([np.roll(h[layer], -p) @ u for p in range(w.shape[0])]))
            back = np.zeros_like(u)
            for p in range(w.shape[0]):
                back += w[p] * np.roll(u, p)
            u = back
        return grads

    def fourier_predictor(self, params: Sequence[np.ndarray]) -> np.ndarray:
        """Gunasekar et al. Lemma 3: ``beta_hat = prod_l DFT(w_l zero-padded to d)``.

        Returns
        -------
        ndarray of shape (d,), complex
            The full unnormalized spectrum (numpy convention,
            ``beta_hat[j] = sum_p beta[p] exp(-2 pi i p j / d)``), so
            ``np.fft.irfft(beta_hat, d)`` equals :meth:`predictor`.
        """
        layers, d = self._layers(params)
        out = np.ones(d, dtype=np.complex128)
        for w in layers:
            out *= np.fft.fft(w, n=d)
        return out

    # ---- theory ----------------------------------------------------------------------------
    def convergence_condition(
        self,
        params: Sequence[np.ndarray],
        task: str = "classification",
        x: np.ndarray | None = None,
    ) -> ConvergenceCondition | None:
        """The sufficient initial condition of Yun et al. (2021) for the loss to go to zero.

        Full width (Corollary 3): ``lambda = min_{l<L, j} |F w_l|_j^2 - |F w_L|_j^2`` with the
        unitary DFT ``F[j, k] = exp(-2 pi i j k / d) / sqrt(d)``.

        Two layers with ``k_1 = 1 < d`` or ``k_1 = 2 < d`` (Corollary 4, one data point ``x``):
        ``lambda = v_1^2 - (x . v_2)^2 / ||x||^2`` for ``k_1 = 1``; for ``k_1 = 2`` the smaller of
        ``(v_1[0] + v_1[1])^2 - ((x + x_l) . v_2)^2 / (||x||^2 + x . x_l)`` and
        ``(v_1[0] - v_1[1])^2 - ((x - x_l) . v_2)^2 / (||x||^2 - x . x_l)`` with
        ``x_l = roll(x, -1)`` (Yun's left shift). Without ``x`` the data-free worst case over
        ``x`` (Cauchy-Schwarz: the subtracted terms are at most ``||v_2||^2`` resp.
        ``2 ||v_2||^2``) is returned, still a sufficient condition.

        The conditions are stated for the initial directions; ``params`` may be scaled by any
        ``alpha > 0`` (this multiplies ``lambda`` by ``alpha^2`` and keeps its sign).

        Returns None for the other architectures (no known condition). ``task`` is accepted
        for the common protocol; the conditions are the same for both tasks here.
        """
        layers, d = self._layers(params)
        if self.depth == 1:
            return ConvergenceCondition(np.inf, True, "linear model: no condition needed")
        if self.is_full_width(d):
            return _corollary3(np.asarray(layers))
        if self.depth != 2 or self.kernel_sizes[0] > 2:
            return None
        v1, v2 = layers
        theorem = "Yun et al. 2021, Corollary 4"
        if x is None:
            detail = "data-free worst case over x (Cauchy-Schwarz)"
            n2 = float(v2 @ v2)
            if v1.shape[0] == 1:
                lam = float(v1[0] ** 2 - n2)
            else:
                lam = float(min((v1[0] + v1[1]) ** 2, (v1[0] - v1[1]) ** 2) - 2.0 * n2)
            return ConvergenceCondition(lam, lam > 0, theorem, detail)
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.shape[0] != d:
            raise ValueError(f"x has {x.shape[0]} entries; expected d = {d}.")
        xx = float(x @ x)
        if xx == 0:
            raise ValueError("x is the zero vector; Corollary 4 needs a nonzero data point.")
        if v1.shape[0] == 1:
            lam = float(v1[0] ** 2 - (x @ v2) ** 2 / xx)
        else:
            xl = np.roll(x, -1)
            auto = float(x @ xl)
            terms = []
            for sign in (1.0, -1.0):
                s = xx + sign * auto
                num = float(((x + sign * xl) @ v2) ** 2)
                sub = num / s if s > 1e-14 * xx else 0.0
                terms.append((v1[0] + sign * v1[1]) ** 2 - sub)
            lam = float(min(terms))
        return ConvergenceCondition(lam, lam > 0, theorem, "single data point x")

    # ---- compiled runs ---------------------------------------------------------------------
    def runner(self, Z: np.ndarray, targets: np.ndarray, loss: int, precision: str) -> Runner:
        """The compiled Fourier-domain kernel bound to the data (float64 only).

        The data's DFT is computed here, once per run (pyFFTW, cached plans). The returned
        ``run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor)`` reads the
        time-domain ``theta`` on every call and writes it back; the full-width layers' half
        spectra are kept between calls and reused when ``theta`` is unchanged since the last
        call, so a run split into chunks is bit for bit the same as one call. ``run.get_state``
        and ``run.set_state`` carry that spectrum through checkpoints.
        """
        if precision == "extended":
            d = np.shape(Z)[1]
            widths = self.kernel_widths(d)
            if all(k == d for k in widths) and loss in (0, 1):
                run = _extended_fourier_runner(Z, loss, self.depth)
                if run is not None:
                    return run
            # the long double tensor kernel on the same layout
            return extended_tensor_runner(convolutional_layout(d, widths), Z, loss)
        if precision not in ("float64", "compensated"):
            raise ValueError(
                "Convolutional supports float64, compensated and extended precision; got "
                f"{precision!r}."
            )
        compensated = precision == "compensated"
        gd_convolutional, real_fourier_rows, _ = _kernels()
        Zc = np.ascontiguousarray(Z, dtype=np.float64)
        tc = np.ascontiguousarray(targets, dtype=np.float64)
        d = Zc.shape[1]
        ksizes = np.array(self.kernel_widths(d), dtype=np.int64)
        ZF = _fourier_rows_once(Zc, real_fourier_rows)
        spec = np.zeros((self.depth, 2, d // 2 + 1))
        lo_spec = np.zeros_like(spec) if compensated else np.zeros((0, 2, 0))
        lo_theta = np.zeros(int(sum(ksizes))) if compensated else np.zeros(0)
        last: list[np.ndarray | None] = [None]

        def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor, scale=None,
                rec_scale=None):  # fmt: skip
            own = scale is None
            if own:
                scale = np.zeros(1, dtype=np.int64)
                rec_scale = np.zeros(len(rec_steps), dtype=np.int64)
            prev = last[0]
            use_spec = (
                prev is not None and prev.shape == theta.shape and np.array_equal(prev, theta)
            )
            last[0] = None
            if not use_spec:  # a new starting point: no compensation carried over
                lo_spec[...] = 0.0
                lo_theta[...] = 0.0
            out = gd_convolutional(
                Zc, tc, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
                scale, rec_scale, ZF, ksizes, spec, use_spec, lo_spec, lo_theta,
            )  # fmt: skip
            if own and (scale[0] != 0 or np.any(rec_scale)):
                unscale(theta, scale, rec_theta, rec_scale)
                return out  # the kept spectra belong to the scaled parameters
            last[0] = theta.copy()
            return out

        run.scaled = True

        def get_state() -> dict:
            return {
                "spec": spec.copy(),
                "last": None if last[0] is None else last[0].copy(),
                "lo_spec": lo_spec.copy(),
                "lo_theta": lo_theta.copy(),
            }

        def set_state(saved: dict) -> None:
            spec[...] = saved["spec"]
            last[0] = None if saved["last"] is None else saved["last"].copy()
            lo_spec[...] = saved.get("lo_spec", lo_spec)
            lo_theta[...] = saved.get("lo_theta", lo_theta)

        run.get_state, run.set_state = get_state, set_state  # checkpointed with the run
        return run

    def gradient_data(self, Z: np.ndarray) -> tuple:
        """Time-domain filters with the Fourier-domain arithmetic of ``_numba_conv``: ``ZT``
        holds the real Fourier rows of ``Z``."""
        from ..kernels._fft import real_fourier_rows
        from ..kernels._numba_flow import KIND_CONVOLUTIONAL

        d = Z.shape[1]
        return kernel_data(
            KIND_CONVOLUTIONAL,
            Z,
            ZT=np.ascontiguousarray(real_fourier_rows(Z)),
            ints=self.kernel_widths(d),
            offsets=layer_offsets(self.shapes(d)),
        )

    def config(self) -> dict:
        sizes = None if self.kernel_sizes is None else list(self.kernel_sizes)
        return {"depth": self.depth, "kernel_sizes": sizes}

    def __repr__(self) -> str:
        if self.kernel_sizes is None:
            return f"Convolutional(depth={self.depth})"
        return f"Convolutional(depth={self.depth}, kernel_sizes={list(self.kernel_sizes)})"


def _extended_fourier_runner(Z: np.ndarray, loss: int, depth: int) -> Runner | None:
    """precision="extended" for full-width layers: the long double Fourier-domain kernel
    (``kernels._c.gd_conv_extended``), with the filters' spectra kept between calls like the
    float64 runner's (and checkpointed through ``get_state``). None without the kernel."""
    from ..kernels import _c

    if not _c.available() or not hasattr(_c.lib, "fb_gd_conv_ld"):
        return None
    Zk = np.ascontiguousarray(Z, dtype=np.longdouble)
    d = Zk.shape[1]
    spec = np.zeros((depth, 2, d // 2 + 1), dtype=np.longdouble)
    last: list[np.ndarray | None] = [None]

    def run(theta, lr, rule, step0, n_steps, rec_steps, rec_theta, floor):
        prev = last[0]
        use_spec = prev is not None and prev.shape == theta.shape and np.array_equal(prev, theta)
        last[0] = None
        out = _c.gd_conv_extended(
            Zk, theta, spec, use_spec, depth, lr, loss, rule, step0, n_steps, rec_steps,
            rec_theta, floor,
        )  # fmt: skip
        last[0] = theta.copy()
        return out

    def get_state() -> dict:
        return {"spec": spec.copy(), "last": None if last[0] is None else last[0].copy()}

    def set_state(saved: dict) -> None:
        spec[...] = saved["spec"]
        last[0] = None if saved["last"] is None else saved["last"].copy()

    run.get_state, run.set_state = get_state, set_state
    return run
