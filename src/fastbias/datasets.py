"""Data sets of the papers and seeded generators of separable data."""

from __future__ import annotations

import numpy as np

from ._validation import check_positive, check_positive_int

__all__ = ["soudry2018", "separable_gaussian"]


def soudry2018(seed: int = 0, n_random: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic data set of Soudry et al. (2018), Figure 3.1.

    Four support vectors ``x1 = (0.5, 1.5)``, ``x2 = (1.5, 0.5)`` (``y = +1``) and
    ``x3 = -x1``, ``x4 = -x2`` (``y = -1``), plus ``n_random`` seeded points (half per class)
    strictly outside the margin: positives with ``x1 + x2 >= 2.5`` and negatives mirrored, so
    the L2 max-margin vector is exactly ``w_hat = (0.5, 0.5)``: direction ``(1, 1)/sqrt(2)``,
    margin ``1/||w_hat|| = sqrt(2)``.

    Returns
    -------
    X : ndarray of shape (4 + n_random, 2)
    y : ndarray of shape (4 + n_random,), in {-1, +1}
    """
    if n_random < 0 or n_random % 2:
        raise ValueError(f"n_random must be an even number >= 0; got {n_random}.")
    rng = np.random.default_rng(seed)
    support = np.array([[0.5, 1.5], [1.5, 0.5], [-0.5, -1.5], [-1.5, -0.5]])
    points = []
    while len(points) < n_random:
        p = rng.uniform(0.0, 4.0, size=2)
        if p.sum() >= 2.5:
            points.append(p)
    extra = np.array(points).reshape(-1, 2)
    half = n_random // 2
    extra[half:] *= -1.0
    X = np.vstack([support, extra])
    y = np.concatenate([[1.0, 1.0, -1.0, -1.0], np.ones(half), -np.ones(half)])
    return X, y


def separable_gaussian(
    n: int, d: int, margin: float = 0.1, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points labelled by a random unit vector ``u``, with margin at least ``margin``.

    Points are ``x ~ N(0, I_d)`` labelled ``y = sign(u.x)``; each is then pushed along ``u``
    so that ``y u.x >= margin``. Hence ``u`` separates the data with normalized margin
    ``>= margin`` and the max-margin solution has margin ``>= margin`` too.

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,), in {-1, +1}
    """
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d")
    margin = check_positive(margin, "margin")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    X = rng.standard_normal((n, d))
    proj = X @ u
    y = np.where(proj >= 0, 1.0, -1.0)
    y[proj == 0] = 1.0
    short = np.maximum(margin - y * proj, 0.0)
    X += (y * short)[:, None] * u[None, :]
    return X, y
