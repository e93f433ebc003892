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
