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
