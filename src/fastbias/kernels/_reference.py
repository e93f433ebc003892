"""Plain-NumPy reference kernels: the specification every compiled kernel is tested against.

Every kernel here has the same arguments, in the same order, as its compiled twins in
``_numba.py`` and ``_c.py``. They are slow (one NumPy call per step) and are used only by the
tests and as documentation of the exact arithmetic.
"""

from __future__ import annotations

import numpy as np

from . import STATUS_DIVERGED, STATUS_OK


def loss_weights(m: np.ndarray, loss: int) -> tuple[float, np.ndarray]:
    """Log-domain loss derivative: ``-l'(m_n) = exp(log_scale) * q_n`` with ``max_n q_n ~ 1``.

    Parameters
    ----------
    m : margins ``y_n f(x_n)``.
    loss : 0 exponential ``l(u) = exp(-u)``, 1 logistic ``l(u) = log(1 + exp(-u))``.

    Returns
    -------
    log_scale, q
        With ``s = min_n m_n`` and ``E_n = exp(-(m_n - s))`` in (0, 1]:
        exponential: ``log_scale = -s``, ``q = E``;
        logistic, ``s >= 0``: ``log_scale = -s``, ``q = E / (1 + exp(-s) E)``;
        logistic, ``s < 0``: ``log_scale = 0``, ``q = 1 / (1 + exp(m))`` (already bounded).
        Neither factor overflows or underflows to a zero step for any finite margins.
    """
    s = m.min()
    if loss == 1 and s < 0:
        return 0.0, 1.0 / (1.0 + np.exp(m))
    E = np.exp(-(m - s))
    if loss == 0:
        return -s, E
    return -s, E / (1.0 + np.exp(-s) * E)


def scaled_loss_sum(m: np.ndarray, loss: int) -> np.floating:
    """``L / exp(log_scale)`` with the same ``log_scale`` as :func:`loss_weights`, in the
    precision of ``m`` (an ``np.longdouble`` run's loss-scaled step divides by a long double
    sum)."""
    s = m.min()
    if loss == 0:
        return np.exp(-(m - s)).sum()
    if s < 0:
        return np.logaddexp(0.0, -m).sum()
    E = np.exp(-(m - s))
    x = np.exp(-s) * E
    ratio = np.where(x > 1e-300, np.log1p(x) / np.where(x > 1e-300, x, 1.0), 1.0)
    return (E * ratio).sum()


def gd_linear(Z, w, lr, loss, rule, step0, n_steps, rec_steps, rec_w, s_floor):
    """Gradient descent on a linear predictor, Soudry et al. eq. 2.2, in place.

    ``w(t+1) = w(t) - eta_t grad L(w(t))`` with ``grad L = -Z^T (-l'(Z w))`` carried as
    ``exp(log_scale) * Z^T q`` (see :func:`loss_weights`), for ``t = step0 .. step0+n_steps-1``.

    Parameters
    ----------
    Z : (N, d) float64, rows ``z_n = y_n x_n``.
    w : (d,) float64, the iterate ``w(step0)``; overwritten with the last good iterate.
    lr : step size eta.
    loss : 0 exponential, 1 logistic.
    rule : 0 fixed ``eta_t = eta``; 1 normalized ``eta_t = eta / ||grad L||``;
        2 loss-scaled ``eta_t = eta / L(w)``.
    step0 : number of steps already taken (the step counter of ``w`` on entry).
    n_steps : steps to take.
    rec_steps : (K,) int64, increasing step numbers in ``(step0, step0+n_steps]``; after step
        ``rec_steps[k]`` the iterate is copied into ``rec_w[k]``.
    rec_w : (K, d) float64, output.
    s_floor : divergence test: the run stops if the minimum margin of an iterate is not
        ``> s_floor`` (this also catches NaN and inf).

    Returns
    -------
    status, fail_step
        ``status`` is 0 when all steps ran; 1 when the iterate of step ``fail_step`` failed the
        divergence test (``w`` then holds that iterate and later records are not written).
    """
    k = 0
    for t in range(step0, step0 + n_steps):
        m = Z @ w
        if not m.min() > s_floor:
            return STATUS_DIVERGED, t
        log_scale, q = loss_weights(m, loss)
        G = Z.T @ q
        if rule == 0:
            w += (lr * np.exp(log_scale)) * G
        elif rule == 1:
            w += (lr / np.sqrt(G @ G)) * G
        else:
            w += (lr / scaled_loss_sum(m, loss)) * G
        if k < rec_steps.shape[0] and rec_steps[k] == t + 1:
            rec_w[k] = w
            k += 1
    return STATUS_OK, step0 + n_steps


# ----------------------------------------------------------------------------------------------
# Parameterized predictors beta = P(theta): one generic GD loop, model-specific predictor / VJP.


def gd_model(
    predictor, vjp, Z, targets, theta, lr, loss, rule, step0, n_steps, rec_steps, rec_theta, floor
):
    """GD on the parameters of a linear-in-x model ``f(x) = x.P(theta)`` (Gunasekar eq. 7).

    Parameters
    ----------
    predictor : callable ``theta -> beta``.
    vjp : callable ``(theta, G) -> dtheta`` with ``dtheta = J_P(theta)^T G``.
    Z : (N, d) rows ``y_n x_n`` for classification; rows ``x_n`` for the squared loss.
    targets : (N,) regression targets (read only for the squared loss).
    theta : flat parameter vector, updated in place.
    loss : 0 exponential, 1 logistic, 2 squared ``L = 1/2 sum_n (x_n.beta - y_n)^2``.
    rule, step0, n_steps, rec_steps, rec_theta : as in :func:`gd_linear`.
    floor : divergence test: classification stops when ``min_n m_n`` is not ``> floor``; the
        squared loss stops when ``L`` is not ``< -floor``.

    The negative gradient is ``-grad_theta L = exp(log_scale) * J^T Z^T q`` with the log-domain
    weights ``q`` of :func:`loss_weights` (``q = y - X beta``, ``log_scale = 0`` for squared).
    """
    k = 0
    for t in range(step0, step0 + n_steps):
        beta = predictor(theta)
        m = Z @ beta
        if loss == 2:
            q = targets - m
            log_scale = 0.0
            lsum = 0.5 * (q @ q)  # (in the precision of q: long double for the extended runs)
            if not lsum < -floor:
                return STATUS_DIVERGED, t
        else:
            if not m.min() > floor:
                return STATUS_DIVERGED, t
            log_scale, q = loss_weights(m, loss)
            lsum = scaled_loss_sum(m, loss)
        g = vjp(theta, Z.T @ q)
        gnorm = np.sqrt(g @ g)
        if not np.isfinite(gnorm):
            return STATUS_DIVERGED, t
        if rule == 0:
            theta += (lr * np.exp(log_scale)) * g
        elif rule == 1:
            if gnorm > 0:
                theta += (lr / gnorm) * g
        else:
            theta += (lr / lsum) * g
        if k < rec_steps.shape[0] and rec_steps[k] == t + 1:
            rec_theta[k] = theta
            k += 1
    return STATUS_OK, step0 + n_steps


def diagonal_predictor(theta, depth):
    """``beta = w_1 * ... * w_L`` (Yun eq. 11); ``theta`` holds the layers one after another."""
    return np.prod(theta.reshape(depth, -1), axis=0)


def diagonal_vjp(theta, G, depth):
    """``d<G, beta>/d w_l = G * prod_{k != l} w_k``."""
    W = theta.reshape(depth, -1)
    out = np.empty_like(W)
    for layer in range(depth):
        out[layer] = G * np.prod(np.delete(W, layer, axis=0), axis=0)
    return out.ravel()


def fc_layers(theta, dims):
    """Split ``theta`` into ``W_1 (d1 x d2), ..., W_{L-1}, w_L (d_L)`` (row-major)."""
    layers, pos = [], 0
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers.append(theta[pos : pos + a * b].reshape(a, b))
        pos += a * b
    layers.append(theta[pos : pos + dims[-1]])
    return layers


def fc_predictor(theta, dims):
    """``beta = W_1 W_2 ... W_{L-1} w_L`` (Gunasekar eq. 1, Yun eq. 10)."""
    layers = fc_layers(theta, dims)
    beta = layers[-1]
    for W in reversed(layers[:-1]):
        beta = W @ beta
    return beta


def fc_vjp(theta, G, dims):
    """VJP: ``d<G, beta>/dW_l = (W_{l-1}^T .. W_1^T G)(W_{l+1} .. w_L)^T``, ``d/dw_L = a_L``."""
    layers = fc_layers(theta, dims)
    right, b = [], layers[-1]
    for W in reversed(layers[:-1]):
        right.insert(0, b)  # right[l] = W_{l+1} .. w_L, the factor to the right of W_l
        b = W @ b
    out, a = [], G
    for W, b in zip(layers[:-1], right, strict=True):
        out.append(np.outer(a, b).ravel())
        a = W.T @ a
    out.append(a)
    return np.concatenate(out)
