"""Every norm of the reference solvers as one weighted group problem.

All the max-margin and min-norm problems here are instances of

    minimize   Phi(u) = sum_g mu_g ||u_g||_2^p
    subject to G u >= h   (inequality rows, multipliers alpha >= 0),
               E u  = e   (equality rows, free multipliers nu),

over a real vector ``u`` split into groups ``u_g`` of one coordinate (a real entry of the
transformed vector rho) or two (the real and imaginary part of a complex entry). With the
right change of variables:

* ``"l1"``/``"lp"`` (Gunasekar Lemma 6, Yun Corollary 2): ``u = beta``, singletons, ``G = Z``;
* ``"dft-l1"``/``"dft-lp"`` (Gunasekar eqs. 9-10, Yun Corollary 3): ``u = c``, the real
  Fourier coordinates of :mod:`._dft`, groups = half-spectrum bins, so that
  ``Phi(c) = ||F beta||_p^p`` over the full spectrum;
* ``"transformed"`` (Yun Theorem 2): ``u = rho`` (real S) or ``(Re rho_j, Im rho_j)`` pairs
  (complex S), ``beta = S^T rho``, ``G = Z B`` with ``B`` the real form of ``S^T``, and for
  complex S the equality rows ``Im(S^T rho) = 0`` that keep ``beta`` real;
* min-norm interpolation (Yun Section 5): no inequality rows, ``E = X B``, ``e = y``.

For p = 1 the problem is convex (an LP when all groups are singletons, else an SOCP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import _dft

__all__ = ["GroupProblem", "l1_problem", "dft_problem", "transformed_problem", "rank_check"]

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, eq=False)
class GroupProblem:
    """``min sum_g mu_g ||u_g||^p  s.t.  G u >= h, E u = e`` (module docstring)."""

    G: np.ndarray | None
    h: np.ndarray | None
    E: np.ndarray | None
    e: np.ndarray | None
    gid: np.ndarray  # (n,) group of each coordinate, groups numbered 0..ng-1
    mu: np.ndarray  # (ng,) group weights
    gscale: np.ndarray  # (ng,) |rho entry| = gscale_g * ||u_g||
    p: float
    to_beta: Callable[[np.ndarray], np.ndarray]
    to_rho: Callable[[np.ndarray], np.ndarray]
    from_beta: Callable[[np.ndarray], np.ndarray] | None
    norm: str

    @property
    def n(self) -> int:
        return int(self.gid.shape[0])

    @property
    def ng(self) -> int:
        return int(self.mu.shape[0])

    @property
    def gsize(self) -> np.ndarray:
        return np.bincount(self.gid, minlength=self.ng)

    @property
    def singletons(self) -> bool:
        """All groups have one coordinate (then p = 1 is a linear program)."""
        return self.n == self.ng

    def group_norms(self, u: np.ndarray) -> np.ndarray:
        """``||u_g||_2`` for every group."""
        return np.sqrt(np.bincount(self.gid, weights=u * u, minlength=self.ng))

    def objective(self, u: np.ndarray, p: float | None = None) -> float:
        """``(sum_g mu_g ||u_g||^p)^{1/p}`` (the quasi-norm ``||rho||_p``)."""
        p = self.p if p is None else p
        r = self.group_norms(u)
        if p == 1.0:
            return float(self.mu @ r)
        return float((self.mu @ r**p) ** (1.0 / p))

    def with_p(self, p: float) -> GroupProblem:
        """The same problem with exponent p (the weights of DFT groups depend on p)."""
        if self.norm.startswith("dft"):
            mult = np.bincount(self.gid, minlength=self.ng).astype(np.float64)
            return replace(self, p=p, mu=mult ** (1.0 - 0.5 * p))
        return replace(self, p=p)


def rank_check(M: np.ndarray, name: str, why: str) -> None:
    """Raise ValueError unless the (m, d) matrix M has full column rank d."""
    m, d = M.shape
    if m < d:
        raise ValueError(
            f"{name} has shape ({m}, {d}); it needs full column rank {d} ({why}), so at least "
            f"{d} rows."
        )
    s = np.linalg.svd(M, compute_uv=False)
    tol = max(m, d) * _EPS * (s[0] if s.size else 0.0) * 10.0
    rank = int(np.sum(s > tol))
    if rank < d:
        kind = "singular" if m == d else "rank deficient"
        raise ValueError(
            f"{name} is {kind}: rank {rank} < {d} (smallest singular value {s[-1]:.2e}, largest "
            f"{s[0]:.2e}); {why}."
        )


def _identity(u: np.ndarray) -> np.ndarray:
    return np.asarray(u, dtype=np.float64).copy()


def l1_problem(Z: np.ndarray | None, p: float, E: np.ndarray | None = None, e=None) -> GroupProblem:
    """``sum_j |beta_j|^p`` with ``Z beta >= 1`` (or ``E beta = e`` when Z is None)."""
    d = (Z if Z is not None else E).shape[1]
    return GroupProblem(
        G=Z,
        h=None if Z is None else np.ones(Z.shape[0]),
        E=E,
        e=e,
        gid=np.arange(d, dtype=np.int64),
        mu=np.ones(d),
        gscale=np.ones(d),
        p=p,
        to_beta=_identity,
        to_rho=_identity,
        from_beta=_identity,
        norm="lp" if p < 1 else "l1",
    )


def dft_problem(
    Z: np.ndarray | None, p: float, E: np.ndarray | None = None, e=None
) -> GroupProblem:
    """``||F beta||_p^p`` (unitary F, full spectrum) in real Fourier coordinates."""
    d = (Z if Z is not None else E).shape[1]
    gid, mult, _ = _dft.fourier_groups(d)
    return GroupProblem(
        G=None if Z is None else _dft.real_fourier_coords(Z),
        h=None if Z is None else np.ones(Z.shape[0]),
        E=None if E is None else _dft.real_fourier_coords(E),
        e=e,
        gid=gid,
        mu=mult.astype(np.float64) ** (1.0 - 0.5 * p),
        gscale=1.0 / np.sqrt(mult.astype(np.float64)),
        p=p,
        to_beta=_dft.from_real_fourier_coords,
        to_rho=lambda u: _dft.dft(_dft.from_real_fourier_coords(u)),
        from_beta=_dft.real_fourier_coords,
        norm="dft-lp" if p < 1 else "dft-l1",
    )


def transformed_problem(Z: np.ndarray | None, S: np.ndarray, p: float, E=None, e=None):
    """Yun et al. Theorem 2: ``||rho||_p`` with ``beta = S^T rho`` real, ``Z beta >= 1``.

    S (m, d), real or complex, must have full column rank (Yun Assumption 1). ``E beta = e``
    rows (min-norm use) are mapped to ``rho`` too.
    """
    m, d = S.shape
    real = not np.iscomplexobj(S) or not np.any(S.imag)
    if real:
        St = np.ascontiguousarray(np.real(S).T)  # (d, m): beta = St rho
        square = m == d

        def from_beta(beta: np.ndarray) -> np.ndarray:
            if not square:
                raise ValueError(
                    f"S has shape ({m}, {d}) with m > d, so beta = S^T rho does not determine "
                    "rho; the certificate needs a square invertible S."
                )
            return np.linalg.solve(St, beta)

        return GroupProblem(
            G=None if Z is None else Z @ St,
            h=None if Z is None else np.ones(Z.shape[0]),
            E=None if E is None else E @ St,
            e=e,
            gid=np.arange(m, dtype=np.int64),
            mu=np.ones(m),
            gscale=np.ones(m),
            p=p,
            to_beta=lambda u: St @ u,
            to_rho=_identity,
            from_beta=from_beta,
            norm="transformed",
        )
    S = np.asarray(S, dtype=np.complex128)
    B = np.empty((d, 2 * m))
    B[:, 0::2] = S.real.T
    B[:, 1::2] = -S.imag.T
    Eq = np.empty((d, 2 * m))
    Eq[:, 0::2] = S.imag.T
    Eq[:, 1::2] = S.real.T
    # Im(S^T rho) = 0 keeps beta real; keep an orthonormal basis of its independent rows.
    _, s, Vt = np.linalg.svd(Eq, full_matrices=False)
    r = int(np.sum(s > max(Eq.shape) * _EPS * 10.0 * (s[0] if s.size else 0.0)))
    E_real = Vt[:r]
    blocks_E = [E_real]
    blocks_e = [np.zeros(r)]
    if E is not None:
        blocks_E.insert(0, E @ B)
        blocks_e.insert(0, np.asarray(e, dtype=np.float64))
    E_all = np.vstack(blocks_E) if sum(b.shape[0] for b in blocks_E) else None
    e_all = np.concatenate(blocks_e) if E_all is not None else None
    St = np.ascontiguousarray(S.T)

    def from_beta_c(beta: np.ndarray) -> np.ndarray:
        if m != d:
            raise ValueError(
                f"S has shape ({m}, {d}) with m > d, so beta = S^T rho does not determine "
                "rho; the certificate needs a square invertible S."
            )
        rho = np.linalg.solve(St, beta.astype(np.complex128))
        u = np.empty(2 * m)
        u[0::2] = rho.real
        u[1::2] = rho.imag
        return u

    return GroupProblem(
        G=None if Z is None else Z @ B,
        h=None if Z is None else np.ones(Z.shape[0]),
        E=E_all,
        e=e_all,
        gid=np.repeat(np.arange(m, dtype=np.int64), 2),
        mu=np.ones(m),
        gscale=np.ones(m),
        p=p,
        to_beta=lambda u: B @ u,
        to_rho=lambda u: u[0::2] + 1j * u[1::2],
        from_beta=from_beta_c,
        norm="transformed",
    )
