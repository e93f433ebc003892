"""The same GD jobs written the way a researcher usually would: a NumPy loop and PyTorch eager.

They are what fastbias is compared against in ``bench/``; both run one interpreter-level
iteration per step.
"""

from __future__ import annotations

import numpy as np


def numpy_gd_linear(Z: np.ndarray, w: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """Exp-loss GD, one NumPy expression per step: ``w += lr * Z^T exp(-Z w)``."""
    w = w.copy()
    for _ in range(steps):
        w += lr * (Z.T @ np.exp(-(Z @ w)))
    return w


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_gd_linear(Z: np.ndarray, w: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """Exp-loss GD in PyTorch eager mode with autograd, float64, on the CPU."""
    import torch

    Zt = torch.from_numpy(Z)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    for _ in range(steps):
        loss = torch.exp(-(Zt @ wt)).sum()
        loss.backward()
        with torch.no_grad():
            wt -= lr * wt.grad
            wt.grad.zero_()
    return wt.detach().numpy()


def numpy_gd_fc2(Z: np.ndarray, W1: np.ndarray, w2: np.ndarray, lr: float, steps: int):
    """Exp-loss GD on a 2-layer linear network ``beta = W1 w2`` in NumPy."""
    W1, w2 = W1.copy(), w2.copy()
    for _ in range(steps):
        beta = W1 @ w2
        G = Z.T @ np.exp(-(Z @ beta))
        gW1 = np.outer(G, w2)
        gw2 = W1.T @ G
        W1 += lr * gW1
        w2 += lr * gw2
    return W1, w2


def torch_gd_fc2(Z: np.ndarray, W1: np.ndarray, w2: np.ndarray, lr: float, steps: int):
    """The same job in PyTorch eager mode with autograd (float64, CPU)."""
    import torch

    Zt = torch.from_numpy(Z)
    A = torch.tensor(W1, requires_grad=True)
    b = torch.tensor(w2, requires_grad=True)
    for _ in range(steps):
        loss = torch.exp(-(Zt @ (A @ b))).sum()
        loss.backward()
        with torch.no_grad():
            A -= lr * A.grad
            b -= lr * b.grad
            A.grad.zero_()
            b.grad.zero_()
    return A.detach().numpy(), b.detach().numpy()


def numpy_gd_conv(Z: np.ndarray, filters: list[np.ndarray], lr: float, steps: int):
    """Exp-loss GD on a full-width linear convolutional network, the usual way: FFTs per step.

    ``beta = irfft(prod_l rfft(w_l))`` (Gunasekar Lemma 3); the gradient of layer l is
    ``irfft(rfft(G) conj(prod_{k != l} rfft(w_k)))`` with ``G = Z^T exp(-Z beta)``.
    """
    d = Z.shape[1]
    ws = [w.copy() for w in filters]
    for _ in range(steps):
        spectra = [np.fft.rfft(w) for w in ws]
        beta = np.fft.irfft(np.prod(spectra, axis=0), n=d)
        G_hat = np.fft.rfft(Z.T @ np.exp(-(Z @ beta)))
        for layer in range(len(ws)):
            others = np.prod([s for k, s in enumerate(spectra) if k != layer], axis=0)
            ws[layer] += lr * np.fft.irfft(G_hat * np.conj(others), n=d)
    return ws


def torch_gd_conv(Z: np.ndarray, filters: list[np.ndarray], lr: float, steps: int):
    """The same job in PyTorch eager mode: torch.fft and autograd (float64, CPU)."""
    import torch

    d = Z.shape[1]
    Zt = torch.from_numpy(Z)
    ws = [torch.tensor(w, requires_grad=True) for w in filters]
    for _ in range(steps):
        spec = torch.fft.rfft(ws[0])
        for w in ws[1:]:
            spec = spec * torch.fft.rfft(w)
        beta = torch.fft.irfft(spec, n=d)
        loss = torch.exp(-(Zt @ beta)).sum()
        loss.backward()
        with torch.no_grad():
            for w in ws:
                w -= lr * w.grad
                w.grad.zero_()
    return [w.detach().numpy() for w in ws]


# ---- the jobs of bench/jobs.py in NumPy, PyTorch and JAX -----------------------------------
# Each takes a Job and a step count and runs exp-loss GD from the job's starting parameters
# with its step size, the plain way (no log-domain shift: the jobs' margins stay moderate),
# returning the final parameters flat in fastbias's layout (for the agreement check).


def _kind(job):
    from fastbias.models import Convolutional, Diagonal, FullyConnected, Linear, Tensor

    for cls, name in ((Linear, "linear"), (Diagonal, "diag"), (FullyConnected, "fc"),
                      (Convolutional, "conv"), (Tensor, "tensor")):  # fmt: skip
        if isinstance(job.model, cls):
            return name
    raise NotImplementedError(type(job.model))


def numpy_run(job, steps: int) -> np.ndarray:
    """One NumPy expression per formula and step."""
    Z, lr, kind = job.Z, job.lr, _kind(job)
    if kind == "linear":
        return numpy_gd_linear(Z, job.theta0, lr, steps)
    if kind == "fc":
        W, v = numpy_gd_fc2(Z, job.params[0], job.params[1], lr, steps)
        return np.concatenate([W.ravel(), v])
    if kind == "conv":
        return np.concatenate(numpy_gd_conv(Z, job.params, lr, steps))
    if kind == "diag":
        W = np.array(job.params)
        for _ in range(steps):
            G = Z.T @ np.exp(-(Z @ np.prod(W, axis=0)))
            W += lr * np.stack([G * np.prod(np.delete(W, i, 0), axis=0) for i in range(len(W))])
        return W.ravel()
    m = job.model  # tensor: COO nonzeros
    pos = m.multi_idx + m.offsets[None, :]
    th = job.theta0.copy()
    for _ in range(steps):
        f = th[pos]
        beta = np.bincount(m.j_idx, m.values * f.prod(axis=1), minlength=Z.shape[1])
        G = Z.T @ np.exp(-(Z @ beta))
        u = G[m.j_idx] * m.values
        g = np.zeros_like(th)
        for layer in range(pos.shape[1]):
            np.add.at(g, pos[:, layer], u * np.delete(f, layer, 1).prod(axis=1))
        th += lr * g
    return th


def _loss_fns(job, xp, index_add):
    """The job's exp loss as a function of the flat parameters, in an array library ``xp``."""
    kind, d = _kind(job), job.Z.shape[1]
    m = job.model
    if kind == "linear":
        return lambda th, Zt: xp.exp(-(Zt @ th)).sum()
    if kind == "diag":
        L = m.depth
        return lambda th, Zt: xp.exp(-(Zt @ xp.prod(th.reshape(L, d), 0))).sum()
    if kind == "fc":
        h = m.widths[0]
        return lambda th, Zt: xp.exp(-(Zt @ (th[: d * h].reshape(d, h) @ th[d * h :]))).sum()
    if kind == "conv":
        L = m.depth

        def conv_loss(th, Zt):
            spec = xp.fft.rfft(th[:d])
            for layer in range(1, L):
                spec = spec * xp.fft.rfft(th[layer * d : (layer + 1) * d])
            return xp.exp(-(Zt @ xp.fft.irfft(spec, n=d))).sum()

        return conv_loss
    pos = m.multi_idx + m.offsets[None, :]

    def tensor_loss(th, Zt, pos=pos, jidx=m.j_idx, vals=m.values):
        terms = th[pos].prod(1) * vals
        return xp.exp(-(Zt @ index_add(d, jidx, terms))).sum()

    return tensor_loss


def torch_run(job, steps: int):
    """PyTorch eager mode with autograd, float64, CPU, one thread per process default."""
    import torch

    Zt = torch.from_numpy(job.Z)
    theta0 = torch.from_numpy(job.theta0.copy())
    idx_cache = {}

    def index_add(d, jidx, terms):
        j = idx_cache.setdefault("j", torch.from_numpy(jidx))
        return torch.zeros(d, dtype=torch.float64).index_add(0, j, terms)

    loss = _loss_fns(job, torch, index_add)
    m = job.model
    if _kind(job) == "tensor":
        pos = torch.from_numpy(m.multi_idx + m.offsets[None, :])
        vals = torch.from_numpy(m.values)
        d = job.Z.shape[1]

        def loss(th, Zt, pos=pos, vals=vals):  # noqa: F811 (torch indexing needs tensors)
            return torch.exp(-(Zt @ index_add(d, m.j_idx, th[pos].prod(1) * vals))).sum()

    def go():
        th = theta0.clone().requires_grad_(True)
        for _ in range(steps):
            (g,) = torch.autograd.grad(loss(th, Zt), th)
            with torch.no_grad():
                th -= job.lr * g
        return th.detach().numpy()

    return go


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def jax_run(job, steps: int):
    """JAX: jit of a lax.fori_loop over steps of jax.grad, float64 (x64 enabled), CPU."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    Zt = jnp.asarray(job.Z)

    def index_add(d, jidx, terms):
        return jnp.zeros(d).at[jnp.asarray(jidx)].add(terms)

    loss = _loss_fns(job, jnp, index_add)
    grad = jax.grad(loss)
    lr = job.lr

    @jax.jit
    def run(th, n):
        return jax.lax.fori_loop(0, n, lambda _, t: t - lr * grad(t, Zt), th)

    theta0 = jnp.asarray(job.theta0)
    run(theta0, 1).block_until_ready()  # compile

    def go():
        return np.asarray(run(theta0, steps).block_until_ready())

    return go
