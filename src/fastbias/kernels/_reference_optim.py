"""Plain-NumPy reference loops of the optimizers of ``_numba_optim`` and ``_numba_multiclass``.

They are the specification the compiled kernels are tested against, step by step: same
arguments, same state arrays, same arithmetic (one NumPy expression per operation, one
interpreter-level iteration per step). Slow; used by the tests and as documentation.
"""

from __future__ import annotations

import numpy as np

from . import STATUS_DIVERGED, STATUS_OK
from ._reference import loss_weights, scaled_loss_sum

OPT_MOMENTUM = 0
OPT_SGD = 1
OPT_ADAM = 2
OPT_ADAGRAD = 3
OPT_COORDINATE = 4
RESCALE_BELOW = 2.0**-300
_LN2 = 0.6931471805599453
_MASK = (1 << 64) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 of uint64 counters (elementwise, arithmetic modulo 2**64)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of ``range(n)`` SGD uses in epoch ``epoch`` (Fisher-Yates from the top,
    swap partner ``r_i mod (i+1)`` with ``r_i = splitmix64(key + i)``,
    ``key = splitmix64(splitmix64(seed) ^ epoch)``)."""
    key = splitmix64(splitmix64(np.array([seed], dtype=np.uint64)) ^ np.uint64(epoch))[0]
    r = splitmix64(key + np.arange(n, dtype=np.uint64))
    perm = np.arange(n, dtype=np.int64)
    for i in range(n - 1, 0, -1):
        j = int(r[i] % np.uint64(i + 1))
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def batch_indices(seed: int, step: int, batch: int, n: int) -> np.ndarray:
    """Sample indices of SGD step ``step`` (0-based): stream positions ``step*batch ..
    step*batch + batch - 1`` of the concatenated per-epoch permutations."""
    pos = step * batch + np.arange(batch)
    epochs = pos // n
    out = np.empty(batch, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = epoch_permutation(seed, int(e), n)[pos[sel] - e * n]
    return out


def _rule_coefficient(rule, lr, log_scale, lsum, gnorm):
    if rule == 0:
        return lr * np.exp(log_scale)
    if rule == 1:
        return lr / gnorm if gnorm > 0 else 0.0
    return lr / lsum


def _eps_scaled(eps, M):
    """``eps exp(-M)``: ``inf`` when it overflows (the step is then 0), 0 for ``eps = 0``."""
    if eps == 0.0:
        return 0.0
    with np.errstate(over="ignore"):
        return eps * np.exp(-M)


def optimizer_step(opt, theta, g, log_scale, lsum, lr, rule, t, hyper, vel, sq, scale):
    """The specification of ``_numba_optim.optimizer_step`` (same state layout, in place)."""
    if not np.isfinite(g @ g):
        return False
    if opt == OPT_ADAM:
        b1, b2, eps = hyper[1], hyper[2], hyper[3]
        M = scale[0]
        if not M >= log_scale:
            if M > -np.inf:
                f = np.exp(M - log_scale)
                vel *= f
                sq *= f * f
            M = log_scale
            scale[0] = M
        gi = np.exp(log_scale - M) * g
        vel[:] = b1 * vel + (1.0 - b1) * gi
        sq[:] = b2 * sq + (1.0 - b2) * (gi * gi)
        den = np.sqrt(sq / (1.0 - b2 ** (t + 1))) + _eps_scaled(eps, M)
        with np.errstate(invalid="ignore", divide="ignore"):
            upd = np.where(den > 0, lr * (vel / (1.0 - b1 ** (t + 1))) / den, 0.0)
        theta += upd
        big = max(np.abs(vel).max(), np.sqrt(sq).max())
        if 0.0 < big < RESCALE_BELOW:
            e = np.frexp(big)[1]
            vel[:] = np.ldexp(vel, -e)
            sq[:] = np.ldexp(sq, -2 * e)
            scale[0] = M + e * _LN2
        return True
    if opt == OPT_ADAGRAD:
        eps = hyper[3]
        M = scale[0]
        if not M >= log_scale:
            if M > -np.inf:
                sq *= np.exp(M - log_scale) ** 2
            M = log_scale
            scale[0] = M
        gi = np.exp(log_scale - M) * g
        sq += gi * gi
        den = np.sqrt(sq) + _eps_scaled(eps, M)
        with np.errstate(invalid="ignore", divide="ignore"):
            theta += np.where(den > 0, lr * gi / den, 0.0)
        return True
    if opt == OPT_COORDINATE:
        j = int(np.argmax(np.abs(g)))
        theta[j] += _rule_coefficient(rule, lr, log_scale, lsum, abs(g[j])) * g[j]
        return True
    c = _rule_coefficient(rule, lr, log_scale, lsum, np.sqrt(g @ g))
    if hyper[0] == 0.0:
        theta += c * g
    else:
        vel[:] = hyper[0] * vel + c * g
        theta += vel
    return True


def optimizer_model(
    predictor, vjp, Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
    floor, opt, hyper, batch, seed, vel, sq, scale,
):  # fmt: skip
    """Reference of every ``_numba_optim.opt_<model>`` kernel for ``f(x) = x.P(theta)``.

    ``predictor(theta) -> beta`` and ``vjp(theta, G) -> J_P(theta)^T G`` define the model; the
    other arguments are those of the kernels (``_reference.gd_model`` plus ``opt``, ``hyper =
    [beta, beta1, beta2, eps]``, the SGD ``batch`` size and ``seed``, and the state arrays
    ``vel``, ``sq``, ``scale``, updated in place). SGD steps use the samples
    :func:`batch_indices` and the unbiased gradient estimate ``(N / B) * sum_batch``, carried as
    ``log_scale + log(N / B)``.
    """
    N = Z.shape[0]
    B = batch if opt == OPT_SGD else N
    log_batch = np.log(N / B)
    k = 0
    for t in range(step0, step0 + n_steps):
        if opt == OPT_SGD:
            idx = batch_indices(seed, t, B, N)
            Zt, tt = Z[idx], targets[idx]
        else:
            Zt, tt = Z, targets
        m = Zt @ predictor(theta)
        if loss == 2:
            q = tt - m
            log_scale = 0.0
            lsum = 0.5 * float(q @ q)
            if not lsum < -floor:
                return STATUS_DIVERGED, t
        else:
            if not m.min() > floor:
                return STATUS_DIVERGED, t
            log_scale, q = loss_weights(m, loss)
            lsum = scaled_loss_sum(m, loss) if rule == 2 else 0.0
        g = vjp(theta, Zt.T @ q)
        if not optimizer_step(
            opt, theta, g, log_scale + log_batch, lsum, lr, rule, t, hyper, vel, sq, scale
        ):
            return STATUS_DIVERGED, t
        if k < rec_steps.shape[0] and rec_steps[k] == t + 1:
            rec_theta[k] = theta
            k += 1
    return STATUS_OK, step0 + n_steps


def optimizer_network(
    forward, jacobian, X, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta,
    floor, opt, hyper, batch, seed, vel, sq, scale,
):  # fmt: skip
    """Reference of ``_numba_optim.opt_network``: :func:`optimizer_model` for a network whose
    output ``Phi(theta; x)`` is not linear in x. ``forward(theta, X) -> (N,)`` outputs and
    ``jacobian(theta, X) -> (N, P)``; ``targets`` are the -1/+1 labels (margins
    ``y_n Phi``) or the regression targets."""
    N = X.shape[0]
    B = batch if opt == OPT_SGD else N
    log_batch = np.log(N / B)
    k = 0
    for t in range(step0, step0 + n_steps):
        if opt == OPT_SGD:
            idx = batch_indices(seed, t, B, N)
            Xt, tt = X[idx], targets[idx]
        else:
            Xt, tt = X, targets
        out = forward(theta, Xt)
        if loss == 2:
            q = tt - out
            log_scale = 0.0
            lsum = 0.5 * float(q @ q)
            if not lsum < -floor:
                return STATUS_DIVERGED, t
            direction = q
        else:
            m = tt * out
            if not m.min() > floor:
                return STATUS_DIVERGED, t
            log_scale, q = loss_weights(m, loss)
            lsum = scaled_loss_sum(m, loss) if rule == 2 else 0.0
            direction = tt * q
        g = jacobian(theta, Xt).T @ direction
        if not optimizer_step(
            opt, theta, g, log_scale + log_batch, lsum, lr, rule, t, hyper, vel, sq, scale
        ):
            return STATUS_DIVERGED, t
        if k < rec_steps.shape[0] and rec_steps[k] == t + 1:
            rec_theta[k] = theta
            k += 1
    return STATUS_OK, step0 + n_steps


# ----------------------------------------------------------------------------------------------
# Multi-class softmax cross-entropy (Soudry et al. Appendix C).


def multiclass_weights(X, W, labels):
    """Log-domain gradient of ``L(W) = sum_n log sum_k exp(w_k.x_n - w_{y_n}.x_n)`` (eq. C.1).

    Returns ``(log_scale, Q, lsum, r)`` with ``grad L = exp(log_scale) X^T Q``:
    ``u_nk = (w_k - w_{y_n}).x_n``, ``r_n = log sum_{k != y_n} exp(u_nk)``,
    ``log_scale = max_n r_n``, ``Q[n, k] = exp(u_nk - log_scale - softplus(r_n))`` (the softmax
    probability of class ``k`` over ``exp(log_scale)``) for ``k != y_n`` and
    ``Q[n, y_n] = -sum_{k != y_n} Q[n, k]``; ``lsum = L / exp(log_scale)``.
    """
    N = X.shape[0]
    rows = np.arange(N)
    U = X @ W
    U = U - U[rows, labels][:, None]
    U[rows, labels] = -np.inf
    top = U.max(axis=1)
    r = top + np.log(np.exp(U - top[:, None]).sum(axis=1))
    s = r.max()
    sp = np.logaddexp(0.0, r)
    Q = np.exp(U - s - sp[:, None])
    Q[rows, labels] = 0.0
    Q[rows, labels] = -Q.sum(axis=1)
    x = np.exp(r)
    safe = np.where(x > 1e-300, x, 1.0)
    ratio = np.where(x > 1e-300, np.log1p(safe) / safe, 1.0)
    lsum = float(np.sum(np.exp(r - s) * ratio))
    return s, Q, lsum, r


def gd_multiclass(X, labels, W, lr, rule, step0, n_steps, rec_steps, rec_W, ceiling):
    """GD on the softmax cross-entropy of a linear multi-class predictor (Soudry Appendix C).

    ``X`` (N, d), ``labels`` (N,) int64 in ``[0, K)``, ``W`` (d, K) updated in place (column k
    is ``w_k``); ``rule`` as in ``_reference.gd_linear``; ``rec_W`` (n_rec, d, K). The run stops
    (status 1) when ``max_n r_n`` (see :func:`multiclass_weights`) is not ``< ceiling``.
    """
    k = 0
    for t in range(step0, step0 + n_steps):
        s, Q, lsum, _ = multiclass_weights(X, W, labels)
        if not s < ceiling:
            return STATUS_DIVERGED, t
        D = X.T @ Q
        gnorm = np.sqrt(np.sum(D * D))
        if not np.isfinite(gnorm):
            return STATUS_DIVERGED, t
        W -= _rule_coefficient(rule, lr, s, lsum, gnorm) * D
        if k < rec_steps.shape[0] and rec_steps[k] == t + 1:
            rec_W[k] = W
            k += 1
    return STATUS_OK, step0 + n_steps
