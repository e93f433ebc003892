"""Soudry et al. (2018), Figure 3.1: GD on the synthetic data set, against the exact SVM."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..datasets import soudry2018
from ..optim import Run, train

__all__ = ["paper_lr", "run", "plot"]


def paper_lr(X: np.ndarray) -> float:
    """The figure's step size ``eta = 1/sigma_max(X)``."""
    return 1.0 / float(np.linalg.norm(X, 2))


def run(
    steps: int = 10**6,
    seed: int = 0,
    lr: float | None = None,
    loss: str = "exp",
    precision: str = "float64",
    progress: bool = False,
) -> tuple[Run, np.ndarray, np.ndarray]:
    """GD from the origin on :func:`fastbias.datasets.soudry2018` with the paper's step size.

    Returns the run and the data ``(X, y)``.
    """
    X, y = soudry2018(seed=seed)
    lr = paper_lr(X) if lr is None else lr
    result = train(
        X, y, loss=loss, steps=steps, lr=lr, precision=precision, progress=progress, reference="svm"
    )
    return result, X, y


def plot(result: Run, X: np.ndarray, y: np.ndarray, path: str | Path) -> Path:
    """Draw Figure 3.1's panels: data and separators; norm, loss, angle and margin gap vs t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result.history
    t = h["step"]
    w_hat = np.asarray(result.reference.coef, dtype=np.float64)
    w_T = np.asarray(result.coef, dtype=np.float64)
    fig, axes = plt.subplots(1, 5, figsize=(20, 4))

    ax = axes[0]
    pos = y > 0
    ax.scatter(X[pos, 0], X[pos, 1], marker="+", color="tab:red", s=60, label="y = +1")
    ax.scatter(
        X[~pos, 0], X[~pos, 1], marker="o", facecolors="none", color="tab:blue", label="y = -1"
    )
    lim = 1.1 * np.abs(X).max()
    xs = np.linspace(-lim, lim, 2)
    for v, style, label in ((w_hat, "k-", "max margin"), (w_T, "b--", f"GD, t = {t[-1]:.0e}")):
        if abs(v[1]) > 1e-12:
            ax.plot(xs, -v[0] / v[1] * xs, style, label=label)
        else:
            ax.axvline(0.0, color=style[0], linestyle=style[1:], label=label)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title("A: data and separators")
    ax.legend(fontsize=8, loc="lower right")

    panels = [
        ("B: ||w(t)|| / ||w(T)||", h["norm"] / h["norm"][-1], "semilogx"),
        ("C: loss", np.exp(h["log_loss"]), "loglog"),
        ("D: angle gap 1 - cos(w, w_hat)", h["angle_gap"], "loglog"),
        ("E: margin gap", h["margin_gap"], "loglog"),
    ]
    for ax, (title, values, scale) in zip(axes[1:], panels, strict=True):
        getattr(ax, scale)(t, values, "b-")
        ax.set_xlabel("t")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"GD ({result.settings['loss']} loss, lr = {result.settings['lr']:.3g}) on Soudry et al. "
        "Figure 3.1 data"
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
