"""numba kernels for optimizers other than plain GD: heavy-ball momentum, mini-batch SGD, Adam,
AdaGrad and greedy coordinate descent, for every model of :mod:`fastbias.models`.

Every kernel runs ``n_steps`` steps in one nopython, nogil call, with the argument order of the
GD kernels of ``_numba_models`` followed by the optimizer's arguments and the model's extras:

    opt_<model>(Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
                opt, hyper, batch, seed, vel, sq, scale, <model extras>)

A step has three parts:

1. the data of the step: all samples, or for SGD the mini-batch of step ``t`` gathered by
   :func:`gather_batch` from a seeded index sequence (:func:`epoch_permutation`);
2. the model's gradient in log domain, ``-grad L = exp(log_scale) * g``, from the margins
   (``_numba_models.predictor_step``) and the model's vector-Jacobian product;
3. :func:`optimizer_step`, shared by all models, which owns the optimizer's arithmetic.

The optimizer state (``vel``, ``sq``, ``scale``) lives in arrays owned by the caller, so a run
split into chunks is the same as one call. ``hyper = [beta, beta1, beta2, eps]``. SGD uses the
unbiased estimate ``(N / B) sum_batch`` of the full gradient, carried as
``log_scale + log(N / B)`` (so ``lr`` means the same as for GD, and ``B = N`` is GD).

Scale: the momentum velocity is stored unscaled; it underflows only where
``exp(log_scale)`` does (margins above ~708), and there the true step is below double
precision relative to ``theta`` anyway, as for the GD kernels. Adam's and AdaGrad's moments
are stored with their own log-scale (see :func:`optimizer_step`), because their steps are
ratios of gradients and stay of order ``lr`` however small the loss is.

Kernels trust their inputs: C-contiguous float64 arrays (int64 for index arrays) of consistent
shapes, validated once by ``fastbias.optim.optimizers.make_optimizer_runner``.

The per-model loops are written out (rather than one loop taking the model's gradient as a
first-class function argument) because numba cannot reuse its on-disk cache for functions
whose argument types include another dispatcher: every process would recompile them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import STATUS_DIVERGED, STATUS_OK
from ._numba import _FAST
from ._numba_flow import make_network_workspace, make_workspace, model_gradient
from ._numba_models import predictor_step_scaled, record

OPT_MOMENTUM = 0
OPT_SGD = 1
OPT_ADAM = 2
OPT_ADAGRAD = 3
OPT_COORDINATE = 4

# The scaled Adam moments are multiplied by an exact power of two when they fall below this.
RESCALE_BELOW = 2.0**-300
_LN2 = 0.6931471805599453

# splitmix64 (Steele, Lea and Flood 2014): a bijective 64-bit mixer, used as a counter-based
# generator. All operands are uint64 so numba keeps the arithmetic modulo 2**64.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)


@njit(nogil=True, cache=True)
def splitmix64(x):
    """The splitmix64 output function of the uint64 counter ``x``."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(nogil=True, cache=True)
def epoch_permutation(seed, epoch, perm):
    """``perm <- `` the permutation of ``range(N)`` used in epoch ``epoch`` (``N = perm.size``).

    Fisher-Yates (Durstenfeld, from the top) driven by the counter-based stream
    ``r_i = splitmix64(key + i)`` with ``key = splitmix64(splitmix64(seed) ^ epoch)``; the swap
    partner of position ``i`` is ``r_i mod (i + 1)``. A pure function of ``(seed, epoch, N)``,
    reproduced by ``_reference_optim.epoch_permutation``.
    """
    n = perm.shape[0]
    for i in range(n):
        perm[i] = i
    key = splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(epoch))
    for i in range(n - 1, 0, -1):
        r = splitmix64(key + np.uint64(i))
        j = np.int64(r % np.uint64(i + 1))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


@njit(nogil=True, cache=True)
def gather_batch(ZT, targets, t, B, seed, perm, epoch_of_perm, ZTb, tb):
    """Columns of step ``t``'s mini-batch into ``ZTb`` (``(d, B)``) and its targets into ``tb``.

    The sample stream is the concatenation of one permutation per epoch; step ``t`` (0-based)
    takes stream positions ``t*B .. t*B + B - 1``, so a batch may straddle two epochs and
    every epoch visits each sample once. ``perm`` caches the permutation of epoch
    ``epoch_of_perm[0]`` (``-1``: none yet).
    """
    d, N = ZT.shape
    for i in range(B):
        pos = t * B + i
        e = pos // N
        if e != epoch_of_perm[0]:
            epoch_permutation(seed, e, perm)
            epoch_of_perm[0] = e
        r = perm[pos - e * N]
        for j in range(d):
            ZTb[j, i] = ZT[j, r]
        tb[i] = targets[r]


@njit(nogil=True, cache=True, fastmath=_FAST)
def _rule_coefficient(rule, lr, log_scale, lsum, gnorm):
    """``eta_t`` times ``exp(log_scale)`` for the step rules fixed / normalized / loss-scaled."""
    if rule == 0:
        return lr * math.exp(log_scale)
    if rule == 1:
        return lr / gnorm if gnorm > 0 else 0.0
    return lr / lsum


@njit(nogil=True, cache=True, fastmath=_FAST)
def optimizer_step(opt, theta, g, log_scale, lsum, lr, rule, t, hyper, vel, sq, scale):
    """One optimizer step from the negative gradient ``exp(log_scale) * g`` at step ``t``.

    ``lsum = L / exp(log_scale)`` (loss-scaled rule). Returns False if ``g`` is not finite.

    * momentum / SGD (heavy ball, Soudry Fig. 3.1 GDMO): ``vel <- beta vel + eta_t (-grad)``,
      ``theta <- theta + vel``; ``beta = hyper[0]`` (``beta = 0``: plain (S)GD, no ``vel``).
    * Adam (Kingma and Ba 2015, with bias correction) with ``beta1, beta2, eps = hyper[1:4]``.
      The moments are stored scaled: ``m = exp(M) vel``, ``v = exp(2 M) sq`` with
      ``M = scale[0]`` (``-inf`` before the first step). When the new gradient's scale exceeds
      ``M`` the stored moments are multiplied by ``exp(M - log_scale)`` and ``M`` is raised;
      when the scaled moments fall below ``RESCALE_BELOW`` they are multiplied by an exact power
      of two. The step ``lr mhat / (sqrt(vhat) + eps)`` is evaluated as
      ``lr (vel/bc1) / (sqrt(sq/bc2) + eps exp(-M))``: exact for every scale, and when
      ``exp(-M)`` overflows (gradients below ~1e-308 of ``eps``) the step is 0, which is the
      value of the true step to double precision. With ``eps = 0`` Adam is invariant to the
      scale of the loss and keeps moving at any margin.
    * AdaGrad (Duchi et al. 2011): ``acc = exp(2 M) sq`` accumulates ``grad**2``; the step is
      ``lr exp(log_scale - M) g / (sqrt(sq) + eps exp(-M))``.
    * greedy coordinate descent (steepest descent for the L1 norm; boosting): only the
      coordinate ``j`` of largest ``|g_j|`` (the first on ties) moves, by ``eta_t g_j``;
      for the normalized rule ``eta_t = lr / |g_j|`` (the dual norm), i.e. a step of ``lr``.
    """
    p = theta.shape[0]
    n2 = 0.0
    for i in range(p):
        n2 += g[i] * g[i]
    if not n2 < np.inf:
        return False
    if opt == OPT_ADAM:
        b1 = hyper[1]
        b2 = hyper[2]
        eps = hyper[3]
        M = scale[0]
        if not M >= log_scale:
            if M > -np.inf:
                f = math.exp(M - log_scale)
                for i in range(p):
                    vel[i] *= f
                    sq[i] *= f * f
            M = log_scale
            scale[0] = M
        fb = math.exp(log_scale - M)
        bc1 = 1.0 - b1 ** (t + 1)
        bc2 = 1.0 - b2 ** (t + 1)
        eps_m = eps * math.exp(-M) if eps > 0.0 else 0.0
        big = 0.0
        for i in range(p):
            gi = fb * g[i]
            mi = b1 * vel[i] + (1.0 - b1) * gi
            vi = b2 * sq[i] + (1.0 - b2) * (gi * gi)
            vel[i] = mi
            sq[i] = vi
            den = math.sqrt(vi / bc2) + eps_m
            if den > 0.0:
                theta[i] += lr * (mi / bc1) / den
            big = max(big, max(abs(mi), math.sqrt(vi)))
        if 0.0 < big < RESCALE_BELOW:
            e = math.frexp(big)[1]
            for i in range(p):
                vel[i] = math.ldexp(vel[i], -e)
                sq[i] = math.ldexp(sq[i], -2 * e)
            scale[0] = M + e * _LN2
        return True
    if opt == OPT_ADAGRAD:
        eps = hyper[3]
        M = scale[0]
        if not M >= log_scale:
            if M > -np.inf:
                f = math.exp(M - log_scale)
                for i in range(p):
                    sq[i] *= f * f
            M = log_scale
            scale[0] = M
        fb = math.exp(log_scale - M)
        eps_m = eps * math.exp(-M) if eps > 0.0 else 0.0
        for i in range(p):
            gi = fb * g[i]
            sq[i] += gi * gi
            den = math.sqrt(sq[i]) + eps_m
            if den > 0.0:
                theta[i] += lr * gi / den
        return True
    if opt == OPT_COORDINATE:
        j = 0
        best = -1.0
        for i in range(p):
            ai = abs(g[i])
            if ai > best:
                best = ai
                j = i
        c = _rule_coefficient(rule, lr, log_scale, lsum, best)
        theta[j] += c * g[j]
        return True
    c = _rule_coefficient(rule, lr, log_scale, lsum, math.sqrt(n2))
    beta = hyper[0]
    if beta == 0.0:
        for i in range(p):
            theta[i] += c * g[i]
    else:
        for i in range(p):
            vel[i] = beta * vel[i] + c * g[i]
            theta[i] += vel[i]
    return True


@njit(nogil=True, cache=True)
def _batches(opt, batch, ZT, targets):
    """The mini-batch set-up of an optimizer run: ``(B, nb, ZTb, tb, perm, epoch_of_perm,
    log_batch, XT, tt)``. SGD gathers each step's batch into ``ZTb`` (d, B) and ``tb``
    (:func:`gather_batch`), and its gradient estimate is scaled by ``N / B``; the others use
    the whole ``ZT`` and ``targets`` (``XT``, ``tt``) and ``nb = N`` samples."""
    d, N = ZT.shape
    B = batch if opt == OPT_SGD else N
    ZTb = np.empty((d, B))
    tb = np.empty(B)
    perm = np.empty(N, dtype=np.int64)
    epoch_of_perm = np.full(1, -1, dtype=np.int64)
    XT = ZTb if opt == OPT_SGD else ZT
    tt = tb if opt == OPT_SGD else targets
    return B, B if opt == OPT_SGD else N, ZTb, tb, perm, epoch_of_perm, math.log(N / B), XT, tt


# ---------------------------------------------------------------------------------------------
# One loop per model. They differ only in the predictor / VJP calls and their scratch arrays.


@njit(nogil=True, cache=True, fastmath=_FAST)
def opt_model(
    kind, ZT, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor,
    opt, hyper, batch, seed, vel, sq, scale, ints, offsets, pos, jidx, vals, net,
):  # fmt: skip
    """Optimizer run on any model kind of ``_numba_flow`` (linear, diagonal, fully connected,
    convolutional, tensor, network).

    ``ZT`` (d, N) is ``Z^T`` for the linear-predictor models (the Fourier rows for the
    convolutional kind) and ``X^T`` for a network, whose ``targets`` are then the labels; the
    model arrays ``ints, offsets, pos, jidx, vals, net`` are those of
    ``Model.gradient_data``. Each step: the gradient of the (mini-batch) loss in log domain
    (``_numba_flow.model_gradient``), then :func:`optimizer_step`. SGD gathers the batch's
    columns of ``ZT`` and its targets (:func:`gather_batch`).
    """
    d = ZT.shape[0]
    B, nb, ZTb, tb, perm, epoch_of_perm, log_batch, XT, tt = _batches(opt, batch, ZT, targets)
    ws, cs = make_workspace(kind, nb, d, ints, pos)
    nws = make_network_workspace(net, nb)
    g = np.empty(theta.shape[0])
    k = 0
    for t in range(step0, step0 + n_steps):
        if opt == OPT_SGD:
            gather_batch(ZT, targets, t, B, seed, perm, epoch_of_perm, ZTb, tb)
        ok, log_scale, lsum = model_gradient(
            kind, theta, XT, tt, loss, rule, 0, floor, ints, offsets, pos, jidx, vals, ws, cs,
            g, net, nws,
        )  # fmt: skip
        if not ok:
            return STATUS_DIVERGED, t
        if not optimizer_step(
            opt, theta, g, log_scale + log_batch, lsum, lr, rule, t, hyper, vel, sq, scale
        ):
            return STATUS_DIVERGED, t
        k = record(theta, t + 1, k, rec_steps, rec_theta)
    return STATUS_OK, step0 + n_steps


@njit(nogil=True, cache=True, fastmath=_FAST)
def opt_linear(
    ZT, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor, opt, hyper,
    batch, seed, vel, sq, scale,
):  # fmt: skip
    """:func:`opt_model` for the linear predictor alone (``KIND_LINEAR``): the same steps in
    the same arithmetic (the gradient of ``_numba_models.predictor_step_scaled``, then
    :func:`optimizer_step`), compiled without the other model kinds' code and without their
    scratch tuples, which ``opt_model`` unpacks (and reference-counts) at every step.

    Measured on the Figure 3.1 data (momentum, quiet machine, ``bench/bench_optimizers.py``):
    466 ns per step against 672 through ``opt_model``; the first call compiles in a fraction of
    ``opt_model``'s time (``fastbias demo`` runs momentum on this model).
    """
    B, nb, ZTb, tb, perm, epoch_of_perm, log_batch, XT, tt = _batches(opt, batch, ZT, targets)
    m = np.empty(nb)
    ubuf = np.empty(nb)
    ubits = ubuf.view(np.int64)
    a = np.empty(nb)
    g = np.empty(theta.shape[0])
    k = 0
    for t in range(step0, step0 + n_steps):
        if opt == OPT_SGD:
            gather_batch(ZT, targets, t, B, seed, perm, epoch_of_perm, ZTb, tb)
        ok, log_scale, lsum = predictor_step_scaled(
            XT, theta, tt, loss, rule, floor, m, ubuf, ubits, a, g, 0
        )
        if not ok:
            return STATUS_DIVERGED, t
        if not optimizer_step(
            opt, theta, g, log_scale + log_batch, lsum, lr, rule, t, hyper, vel, sq, scale
        ):
            return STATUS_DIVERGED, t
        k = record(theta, t + 1, k, rec_steps, rec_theta)
    return STATUS_OK, step0 + n_steps
