"""Yun, Krishnan & Mobahi (2021): the experiments of Section 6 and the limits of Section 5.

Targets:

- ``yun2021-fig1``: Figures 1 and 3 (top left), regression on one point: GD trajectories of
  the linear coefficients of 2-layer fully connected, diagonal and convolutional networks from
  four initial directions and three scales, against Theorem 6's limit points;
- ``yun2021-fig3``: Figure 3, classification on two points: the directions at the paper's
  horizon depend on the initialization (the paper's finding), and a gradient flow to
  ``log t = 1e5`` shows them converging to the L2 / L1 / DFT-L1 max-margin directions;
- ``yun2021-thm6``: Theorem 6 (two layers, one point) and Theorem 5's Corollaries 5-7 (several
  points) against gradient flow and GD, and Remark 4's small / large scale regimes.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import fastbias as fb

from ..models import Convolutional, Diagonal, FullyConnected
from ..references import min_norm, two_layer_limit_point
from . import claims as C
from ._framework import Context, Outcome, target
from ._plotting import figure, save

PAPER = "Yun et al. (2021)"

__all__ = [
    "section6_models",
    "initial_directions",
    "section6_init",
    "figure1",
    "figure3",
    "theorem6",
]

#: Section 6's regression data: one point x = (1, 2), y = 1.
X_REG = np.array([[1.0, 2.0]])
Y_REG = np.array([1.0])
#: Section 6's classification data: ((1, 2), +1) and ((0, -3), -1).
X_CLS = np.array([[1.0, 2.0], [0.0, -3.0]])
Y_CLS = np.array([1.0, -1.0])
#: The initial scales of Section 6.
ALPHAS = (0.01, 0.5, 1.0)
#: The first layer's scale in the initial directions (see :func:`section6_init`).
KAPPA = 2.0
ARCHS = ("fc", "diag", "conv")
NAMES = {"fc": "fully connected", "diag": "diagonal", "conv": "convolutional"}
NORMS = {"fc": "l2", "diag": "l1", "conv": "dft-l1"}
NORM_NAMES = {"fc": "min L2", "diag": "min L1", "conv": "min DFT-L1"}
#: The minimum-norm interpolants of x.z = 1 as the paper prints them (Section 6).
PRINTED_MIN_NORM = {"fc": (0.2, 0.4), "diag": (0.0, 0.5), "conv": (0.33, 0.33)}
ALPHA_COLORS = {0.01: "tab:blue", 0.5: "tab:orange", 1.0: "tab:red"}
Z_COLORS = ("tab:purple", "tab:green", "tab:brown", "tab:cyan")


def section6_models() -> dict[str, Any]:
    """The three 2-layer networks of Section 6 on d = 2: fully connected (hidden width d, as
    in Section 5.3), diagonal, and convolutional with full-length filters."""
    return {"fc": FullyConnected([2]), "diag": Diagonal(2), "conv": Convolutional(2)}


def initial_directions(n: int = 4, seed: int = 0) -> np.ndarray:
    """Section 6's "randomly picked" directions ``z_j``: unit vectors at uniform random angles
    (seeded). Shape ``(n, 2)``."""
    angles = np.random.default_rng(seed).uniform(0.0, 2.0 * np.pi, n)
    return np.c_[np.cos(angles), np.sin(angles)]


def section6_init(arch: str, z: np.ndarray) -> list[np.ndarray]:
    """Initial directions ``[v1_bar, v2_bar]`` with ``beta(v1_bar, v2_bar) = z`` exactly.

    The first layer is ``KAPPA`` times the architecture's identity (the identity matrix, the
    all-ones diagonal, the delta filter ``e_0``), the second ``z / KAPPA``, so that
    ``beta(Theta(0)) = alpha^2 z`` for ``v_l(0) = alpha v_l_bar``. This is the zero-asymmetric
    initialization the paper generalizes (Theorem 7.1, Wu et al. 2019; Corollary 5's
    ``w_L(0) = 0``) plus the second layer that places ``beta(0)`` at ``alpha^2 z``. With
    ``KAPPA = 2`` Theorem 6's condition ``[U_1^T v1]_j^2 - [U_2^T v2]_j^2 >= lambda > 0``
    holds for every unit ``z`` on x = (1, 2): it needs ``KAPPA^4 > 5 z_1^2`` (fully
    connected), ``> (z_1 +- z_2)^2`` (convolutional), ``> |z_j|`` (diagonal).
    """
    z = np.asarray(z, dtype=np.float64)
    if arch == "fc":
        first = np.eye(2)
    elif arch == "diag":
        first = np.ones(2)
    elif arch == "conv":
        first = np.array([1.0, 0.0])
    else:
        raise ValueError(f"arch must be one of {ARCHS}; got {arch!r}.")
    init = [KAPPA * first, z / KAPPA]
    beta = section6_models()[arch].predictor(init)
    if not np.allclose(beta, z, rtol=0, atol=1e-14):  # pragma: no cover - construction check
        raise RuntimeError(f"{arch}: beta(init) = {beta}, expected {z}")
    return init


def _spread(points: np.ndarray) -> float:
    """Largest distance between two of the points."""
    pts = np.asarray(points, dtype=np.float64)
    return max(
        (float(np.linalg.norm(a - b)) for a, b in itertools.combinations(pts, 2)), default=0.0
    )


def _angle_deg(beta: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Angle (degrees) between each row of ``beta`` and the unit ``direction``; accurate for
    tiny angles (atan2 of the cross and dot products)."""
    b = np.atleast_2d(np.asarray(beta, dtype=np.float64))
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u)
    cross = b[:, 0] * u[1] - b[:, 1] * u[0]
    return np.degrees(np.arctan2(np.abs(cross), b @ u))


# ------------------------------------------------------------------------------------------
# Figure 1: regression
# ------------------------------------------------------------------------------------------


def _fig1_run(spec: tuple) -> dict[str, Any]:
    """One (architecture, direction, scale) of the regression experiment: GD at eta to ext T
    (trajectory up to T), GD at eta/2 to 2 ext T, gradient flow to rest, Theorem 6."""
    arch, j, z, alpha, T, ext, lr, sched = spec
    model = section6_models()[arch]
    init = section6_init(arch, z)
    kw = dict(model=model, loss="squared", init=init, init_scale=alpha)
    gd = fb.train(X_REG, Y_REG, steps=ext * T, lr=lr, record=sched, **kw)
    steps = np.asarray(gd.history["step"])
    betas = np.asarray(gd.history.iterates, dtype=np.float64)  # beta(t) rows
    at_T = int(np.flatnonzero(steps == T)[0])
    half = fb.train(X_REG, Y_REG, steps=2 * ext * T, lr=lr / 2, record=[2 * ext * T], **kw)
    rtol = 1e-10
    flow = fb.flow(X_REG, Y_REG, t_max=1e4, rtol=rtol, atol=1e-14, record=[1e4], **kw)
    pred = fb.predicted_limit(model, X_REG, Y_REG, loss="squared", init=init, init_scale=alpha)
    thm6 = two_layer_limit_point(model, X_REG[0], float(Y_REG[0]), init, alpha)
    flow_layers = flow.params
    flow_gap = max(
        float(np.linalg.norm(flow.coef - thm6.coef)),
        *(
            float(np.max(np.abs(np.ravel(a) - np.ravel(b))))
            for a, b in zip(flow_layers, thm6.layers, strict=True)
        ),
    )
    return {
        "arch": arch,
        "j": j,
        "alpha": alpha,
        "z": z,
        "steps": np.r_[0, steps[: at_T + 1]],
        "traj": np.vstack([alpha**2 * z, betas[: at_T + 1]]),
        "beta_T": betas[at_T],
        "beta_ext": betas[-1],
        "beta_half": half.coef,
        "loss_T": float(np.asarray(gd.history["loss"])[at_T]),
        "flow": flow.coef,
        "flow_gap": flow_gap,
        "flow_tol": flow.settings["accepted_steps"]
        * rtol
        * max(1.0, float(np.abs(flow.coef).max())),
        "flow_status": flow.status,
        "pred": np.asarray(pred.coef),
        "theorem": pred.theorem,
        "thm6": thm6.coef,
        "lam": thm6.condition,
        "s": thm6.singular_values,
    }


def _offset_exponent(arch: str, s: np.ndarray) -> float:
    """How fast Theorem 6's limit reaches the min-norm point as alpha -> 0:
    ``||beta_inf(alpha) - beta_min|| ~ alpha^p``.

    From Theorem 6: ``nu = g^{-1}(y/alpha^2)`` grows so that ``alpha^2 e^{2 s_1 nu}`` stays of
    order one; a direction with singular value ``s_j < s_1`` contributes
    ``alpha^2 e^{2 s_j nu} ~ alpha^{2 - 2 s_j / s_1}``. For the fully connected network every
    singular value is ``||x||`` and the offset is the part ``alpha (I - U_1 U_1^T) v1_bar`` of
    the first layer that never moves, times a second layer of order one: ``p = 1``.
    """
    if arch == "fc":
        return 1.0
    s = np.sort(np.asarray(s, dtype=np.float64))[::-1]
    return float(2.0 - 2.0 * s[1] / s[0])


@target(
    "yun2021-fig1",
    paper=PAPER,
    title="Figure 1: regression trajectories of FC / diagonal / conv networks vs Theorem 6",
    plot=lambda outcome, out: plot_figure1(outcome, out),
    seconds_full=8.4,
    seconds_quick=8.5,
)
def figure1(ctx: Context) -> Outcome:
    """Figures 1 and 3 (top left): GD on one regression point reaches Theorem 6's limit point.

    Settings as the paper states them (Section 6): 2-layer linear fully connected, diagonal
    and convolutional networks, one point ``x = (1, 2)``, ``y = 1``, squared loss
    ``1/2 (f - y)^2``; four random directions ``z_j`` with ``beta(Theta(0)) = alpha^2 z_j``;
    ``alpha in {0.01, 0.5, 1}``; GD with ``eta = 1e-3`` for ``T = 5e3`` steps. The same in
    ``--quick`` (the whole experiment takes seconds). Chosen where the paper is silent:

    - the fully connected hidden width is ``d = 2`` (Section 5.3's ``d_l = d``); the
      convolutional filters are full length (``k_1 = d``);
    - ``z_j``: unit vectors at uniform random angles (seed 0);
    - the initial directions: the first layer ``2 x`` the architecture's identity, the second
      ``z_j / 2`` (:func:`section6_init`), a zero-asymmetric start displaced to
      ``beta(0) = alpha^2 z_j``; it satisfies Theorem 6's condition (lambda > 0) for all.

    How the claims are measured. Theorem 6 is about gradient flow: the package's flow
    integrator (rtol 1e-10) is run to rest and compared with the closed form (the layers and
    ``beta``), to the integrator's global error bound (accepted steps x rtol). GD with a finite
    step ends at ``O(eta)`` from the flow's limit: its deviation is estimated by Richardson's
    rule from GD at ``eta`` and ``eta/2`` (``err(eta) ~ 2 |beta_eta - beta_{eta/2}|``; the
    tolerance is 2.5x that, the 0.5 for the second-order remainder, ``O(eta lambda_max)``
    ~ 0.1 here), plus the distance GD still moves after ``T`` (``|beta(T) - beta(10 T)|``;
    ``4 T`` in ``--quick``, the Richardson run then to ``8 T`` instead of ``20 T``).
    "T is large enough" is checked as ``|beta(T) - beta(10 T)| <= 1e-3`` (a tenth of a
    percent of the figure's unit scale: no visible motion after T). The alpha -> 0 limits:
    Theorem 6's offset from the min-norm point shrinks like ``alpha^p`` with
    ``p = 2 - 2 s_2/s_1`` from the singular values of ``M(x)`` (1 for diagonal, 4/3 for
    convolutional) and ``p = 1`` for fully connected (see :func:`_offset_exponent`); the
    exponent is measured on Theorem 6 between alpha = 1e-6 and 1e-4.
    """
    T = ctx.horizon(5000, 5000)
    ext = ctx.pick(10, 4)  # GD continues to ext T (and to 2 ext T at eta/2)
    lr = 1e-3
    Z = initial_directions()
    models = section6_models()
    sched = np.unique(
        np.r_[np.rint(np.geomspace(1, T, 160)), np.linspace(1, T, 120).round(), ext * T].astype(
            np.int64
        )
    )
    specs = [
        (arch, j, Z[j], alpha, T, ext, lr, sched)
        for arch in ARCHS
        for alpha in ALPHAS
        for j in range(len(Z))
    ]
    runs = ctx.map(_fig1_run, specs)
    by = {(r["arch"], r["alpha"], r["j"]): r for r in runs}
    mins = {arch: np.asarray(min_norm(X_REG, Y_REG, norm=NORMS[arch]).coef) for arch in ARCHS}
    source = f"{PAPER}, Section 6, Figures 1 and 3"

    claims = [
        C.at_most(
            "min-norm points are (0.2,0.4), (0,0.5), (0.33,0.33)",
            f"{PAPER}, Section 6",
            0.005,
            max(float(np.abs(mins[a] - PRINTED_MIN_NORM[a]).max()) for a in ARCHS),
            predicted="as printed (2 digits)",
            note="fastbias.min_norm(norm='l2' | 'l1' | 'dft-l1') on x = (1, 2), y = 1: "
            + ", ".join(f"{NORM_NAMES[a]} = {np.array2string(mins[a], precision=6)}" for a in ARCHS)
            + "; tolerance: half a unit of the paper's last printed digit",
        ),
    ]
    offsets_table: dict[str, list] = {"arch": [], "z_index": [], "alpha": [], "offset": [], "p": []}
    sweep = np.geomspace(1e-6, 1.0, 25)
    for arch in ARCHS:
        rs = [by[arch, a, j] for a in ALPHAS for j in range(len(Z))]
        move = max(float(np.linalg.norm(r["beta_T"] - r["beta_ext"])) for r in rs)
        claims.append(
            C.at_most(
                f"{arch}: T = {T} is large enough (no motion after T)",
                f"{PAPER}, Section 6",
                1e-3,
                move,
                note=f"max over z_j, alpha of |beta(T) - beta({ext} T)|; loss at T between "
                f"{min(r['loss_T'] for r in rs):.2g} and {max(r['loss_T'] for r in rs):.2g}",
            )
        )
        gap = max(r["flow_gap"] for r in rs)
        ftol = max(r["flow_tol"] for r in rs)
        claims.append(
            C.at_most(
                f"{arch}: gradient flow's limit = Theorem 6 (layers, beta)",
                f"{PAPER}, Theorem 6",
                ftol,
                gap,
                predicted="0",
                note="max over z_j, alpha of the largest difference between fastbias.flow "
                "(rtol 1e-10, run to rest) and Theorem 6's v1, v2, beta; tolerance: accepted "
                "steps x rtol x max|beta| (the integrator's global error bound); Theorem 6's "
                f"lambda >= {min(r['lam'] for r in rs):.3g} for these initializations",
            )
        )
        dists = np.array([np.linalg.norm(r["beta_T"] - r["pred"]) for r in rs])
        tols = np.array(
            [
                np.linalg.norm(r["beta_T"] - r["beta_ext"])
                + 2.5 * np.linalg.norm(r["beta_ext"] - r["beta_half"])
                for r in rs
            ]
        )
        worst = int(np.argmax(dists / tols))
        claims.append(
            C.holds(
                f"{arch}: GD's limit = Theorem 6's prediction",
                source,
                "0 (+ O(eta))",
                f"max {dists.max():.3g}",
                bool(np.all(dists <= tols)),
                f"per run <= O(eta) bound (max {tols.max():.3g})",
                value=float(dists.max()),
                note=f"|beta_GD(T) - fb.predicted_limit| over z_j, alpha; worst ratio "
                f"{dists[worst] / tols[worst]:.2f} of its bound |beta(T) - beta({ext}T)| + "
                f"2.5 |beta_eta - beta_eta/2| (Richardson). Prediction: {rs[0]['theorem']}",
            )
        )
        gd_spread = [_spread([by[arch, a, j]["beta_T"] for j in range(len(Z))]) for a in ALPHAS]
        th_spread = [_spread([by[arch, a, j]["pred"] for j in range(len(Z))]) for a in ALPHAS]
        claims.append(
            C.holds(
                f"{arch}: limit depends less on z_j when alpha is small",
                source,
                " < ".join(f"{v:.3g}" for v in th_spread),
                " < ".join(f"{v:.3g}" for v in gd_spread),
                bool(np.all(np.diff(gd_spread) > 0)),
                "spread increasing in alpha",
                value=gd_spread[0],
                note="largest distance between the four GD limits at alpha = "
                + ", ".join(str(a) for a in ALPHAS)
                + " (theory: the same for Theorem 6's limits)",
            )
        )
        # alpha -> 0: Theorem 6's offset from the min-norm point ~ alpha^p, and GD's at 0.01
        model = models[arch]
        p = _offset_exponent(arch, rs[0]["s"])
        slopes = []
        for j in range(len(Z)):
            init = section6_init(arch, Z[j])
            offs = np.array(
                [
                    np.linalg.norm(
                        two_layer_limit_point(model, X_REG[0], 1.0, init, a).coef - mins[arch]
                    )
                    for a in sweep
                ]
            )
            offsets_table["arch"] += [arch] * len(sweep)
            offsets_table["z_index"] += [j] * len(sweep)
            offsets_table["alpha"] += list(sweep)
            offsets_table["offset"] += list(offs)
            offsets_table["p"] += [p] * len(sweep)
            i0, i1 = 0, int(np.argmin(np.abs(np.log(sweep / 1e-4))))
            slopes.append(np.log(offs[i1] / offs[i0]) / np.log(sweep[i1] / sweep[i0]))
        small = [by[arch, ALPHAS[0], j] for j in range(len(Z))]
        gd_off = max(float(np.linalg.norm(r["beta_T"] - mins[arch])) for r in small)
        th_off = max(float(np.linalg.norm(r["pred"] - mins[arch])) for r in small)
        claims.append(
            C.close(
                f"{arch}: alpha -> 0 limit is the {NORM_NAMES[arch]} point (rate alpha^p)",
                f"{PAPER}, Theorem 6 and Section 6",
                p,
                float(np.min(slopes)),
                atol=0.05,
                note=f"p = {p:.4g} (see the docstring); measured: the slope of log "
                "|beta_inf - beta_min| vs log alpha for Theorem 6 on [1e-6, 1e-4], smallest of "
                f"the four z_j (largest {max(slopes):.4g}). At alpha = {ALPHAS[0]} GD is "
                f"{gd_off:.3g} from {np.array2string(mins[arch], precision=4)} (Theorem 6: "
                f"{th_off:.3g}); tolerance 0.05 on the exponent",
            )
        )

    traj: dict[str, list] = {
        "arch": [],
        "alpha": [],
        "z_index": [],
        "step": [],
        "beta_0": [],
        "beta_1": [],
    }
    lim: dict[str, list] = {
        k: []
        for k in (
            "arch",
            "alpha",
            "z_index",
            "z_0",
            "z_1",
            "lambda",
            "loss_T",
            "gd_T_0",
            "gd_T_1",
            "gd_ext_0",
            "gd_ext_1",
            "gd_half_0",
            "gd_half_1",
            "flow_0",
            "flow_1",
            "theorem6_0",
            "theorem6_1",
            "dist_gd_theorem6",
            "flow_gap",
        )
    }
    for r in runs:
        n = len(r["steps"])
        traj["arch"] += [r["arch"]] * n
        traj["alpha"] += [r["alpha"]] * n
        traj["z_index"] += [r["j"]] * n
        traj["step"] += list(r["steps"])
        traj["beta_0"] += list(r["traj"][:, 0])
        traj["beta_1"] += list(r["traj"][:, 1])
        row = {
            "arch": r["arch"],
            "alpha": r["alpha"],
            "z_index": r["j"],
            "z_0": r["z"][0],
            "z_1": r["z"][1],
            "lambda": r["lam"],
            "loss_T": r["loss_T"],
            "dist_gd_theorem6": float(np.linalg.norm(r["beta_T"] - r["pred"])),
            "flow_gap": r["flow_gap"],
        }
        for key, vec in (
            ("gd_T", r["beta_T"]),
            ("gd_ext", r["beta_ext"]),
            ("gd_half", r["beta_half"]),
            ("flow", r["flow"]),
            ("theorem6", r["pred"]),
        ):
            row[f"{key}_0"], row[f"{key}_1"] = float(vec[0]), float(vec[1])
        for k, v in row.items():
            lim[k].append(v)
    points = {
        "name": [NORM_NAMES[a] for a in ARCHS],
        "arch": list(ARCHS),
        "beta_0": [float(mins[a][0]) for a in ARCHS],
        "beta_1": [float(mins[a][1]) for a in ARCHS],
    }
    report_lines = [
        f"Regression on x = (1, 2), y = 1; GD eta = {lr:g}, T = {T}; Theorem 6 predictions:",
        f"{'arch':6s} {'alpha':>6s} {'z_j':>18s} {'GD beta(T)':>24s} {'Theorem 6':>24s} "
        f"{'dist':>9s}",
    ]
    for r in runs:
        report_lines.append(
            f"{r['arch']:6s} {r['alpha']:6g} {np.array2string(r['z'], precision=3):>18s} "
            f"{np.array2string(r['beta_T'], precision=5):>24s} "
            f"{np.array2string(r['pred'], precision=5):>24s} "
            f"{np.linalg.norm(r['beta_T'] - r['pred']):9.2e}"
        )
    return Outcome(
        claims=claims,
        tables={
            "figure1_trajectories": traj,
            "figure1_limits": lim,
            "figure1_min_norm_points": points,
            "figure1_alpha_offsets": offsets_table,
        },
        settings={
            "data": "x = (1, 2), y = 1",
            "loss": "squared (1/2 (f - y)^2)",
            "models": {a: repr(m) for a, m in models.items()},
            "alphas": list(ALPHAS),
            "directions": Z,
            "init": "v1_bar = 2 * identity, v2_bar = z_j / 2 (section6_init)",
            "lr": lr,
            "steps": T,
            "richardson": {"lr": lr / 2, "steps": 2 * ext * T},
            "extension_steps": ext * T,
            "flow": {"rtol": 1e-10, "atol": 1e-14, "t_max": 1e4},
        },
        report="\n".join(report_lines),
    )


def _plane_axes(ax, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("beta_1")
    ax.set_ylabel("beta_2")
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)


def plot_figure1(outcome: Outcome, out: Path) -> list[Path]:
    """Figure 1 / 3 (top left): trajectories of beta in the plane, one panel per architecture
    and scale, and Theorem 6's offset from the min-norm points against alpha."""
    t = outcome.tables
    tr, lim, pts = t["figure1_trajectories"], t["figure1_limits"], t["figure1_min_norm_points"]
    arch_col = np.asarray(tr["arch"])
    alpha_col = np.asarray(tr["alpha"], dtype=float)
    zi_col = np.asarray(tr["z_index"])
    b0, b1 = np.asarray(tr["beta_0"], dtype=float), np.asarray(tr["beta_1"], dtype=float)
    l_arch, l_alpha = np.asarray(lim["arch"]), np.asarray(lim["alpha"], dtype=float)
    l_z = np.asarray(lim["z_index"])
    alphas = sorted(set(alpha_col.tolist()))
    fig, axes = figure(len(alphas), len(ARCHS), width=13.5, height=4.3 * len(alphas))
    for row, alpha in enumerate(alphas):
        sel = alpha_col == alpha
        lo = min(b0[sel].min(), b1[sel].min(), -0.1)
        hi = max(b0[sel].max(), b1[sel].max(), 0.6)
        pad = 0.08 * (hi - lo)
        lo, hi = max(lo - pad, -1.6), min(hi + pad, 1.6)
        for col, arch in enumerate(ARCHS):
            ax = axes[row * len(ARCHS) + col]
            xs = np.linspace(lo, hi, 2)
            ax.plot(xs, (1 - xs) / 2, color="gold", lw=3, alpha=0.8, label="x.beta = 1 (minima)")
            for j in sorted(set(zi_col.tolist())):
                m = (arch_col == arch) & sel & (zi_col == j)
                color = Z_COLORS[j % len(Z_COLORS)]
                ax.plot(b0[m], b1[m], color=color, lw=1.3, label=f"GD from alpha^2 z_{j + 1}")
                ax.plot(b0[m][0], b1[m][0], "o", color=color, ms=5, mfc="white")
                k = (l_arch == arch) & (l_alpha == alpha) & (l_z == j)
                ax.plot(
                    np.asarray(lim["theorem6_0"])[k],
                    np.asarray(lim["theorem6_1"])[k],
                    "o",
                    ms=9,
                    mfc="none",
                    mec="k",
                    mew=1.2,
                )
            ax.plot([], [], "o", ms=9, mfc="none", mec="k", label="Theorem 6 limit")
            markers = {"fc": "*", "diag": "s", "conv": "D"}
            for name, a, p0, p1 in zip(
                pts["name"], pts["arch"], pts["beta_0"], pts["beta_1"], strict=True
            ):
                ax.plot(
                    p0,
                    p1,
                    markers[a],
                    color="k" if a == arch else "0.6",
                    ms=7,
                    label=name if row == 0 and col == 0 else None,
                )
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            _plane_axes(ax, f"{NAMES[arch]}, alpha = {alpha:g}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9, bbox_to_anchor=(0.5, -0.03))
    fig.suptitle(
        f"{PAPER}, Figures 1 and 3: regression x = (1, 2), y = 1; GD eta = 1e-3, "
        "T = 5e3 (circles: starts alpha^2 z_j; rings: Theorem 6)",
        fontsize=11,
        y=1.01,
    )
    files = [save(fig, out / "figure1.png")]

    off = t["figure1_alpha_offsets"]
    o_arch, o_alpha = np.asarray(off["arch"]), np.asarray(off["alpha"], dtype=float)
    o_z, o_val = np.asarray(off["z_index"]), np.asarray(off["offset"], dtype=float)
    fig, axes = figure(1, len(ARCHS), width=13.5, height=4.0)
    for ax, arch in zip(axes, ARCHS, strict=True):
        k = list(pts["arch"]).index(arch)
        target_pt = np.array([pts["beta_0"][k], pts["beta_1"][k]])
        for j in sorted(set(o_z.tolist())):
            m = (o_arch == arch) & (o_z == j)
            color = Z_COLORS[j % len(Z_COLORS)]
            ax.loglog(o_alpha[m], o_val[m], color=color, lw=1.2, label=f"Theorem 6, z_{j + 1}")
            g = (l_arch == arch) & (l_z == j)
            gd = np.c_[np.asarray(lim["gd_T_0"])[g], np.asarray(lim["gd_T_1"])[g]]
            ax.loglog(
                l_alpha[g], np.linalg.norm(gd - target_pt, axis=1), "o", color=color, mfc="none"
            )
        ax.plot([], [], "ko", mfc="none", label="GD at T")
        m = (o_arch == arch) & (o_alpha <= 1e-2)
        p = float(np.asarray(off["p"], dtype=float)[m][0])
        a_min = o_alpha[m].min()
        v_min = o_val[m][o_alpha[m] == a_min].max()
        xs = np.geomspace(a_min, 1e-2, 10)
        ax.loglog(xs, 2 * v_min * (xs / a_min) ** p, "k:", lw=1.5, label=f"alpha^{p:.3g} (law)")
        ax.set_title(f"{NAMES[arch]}: distance to the {pts['name'][k]} point", fontsize=10)
        ax.set_xlabel("alpha")
        ax.set_ylabel("|beta_inf(alpha) - beta_min|")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{PAPER}, Theorem 6: the limit point tends to the min-norm point as alpha -> 0",
        fontsize=11,
    )
    files.append(save(fig, out / "figure1_alpha.png"))
    return files


# ------------------------------------------------------------------------------------------
# Figure 3: classification
# ------------------------------------------------------------------------------------------


def _rate_exponent(arch: str, model: Any, x_support: np.ndarray) -> float:
    """The exponent ``p`` of ``angle(beta(t), limit direction) ~ (log t)^{-p}`` under
    gradient flow on Section 6's classification data (only ``x_1 = (1, 2)`` is a support
    vector with a positive dual weight in the limit).

    Diagonal and convolutional networks are diagonal in the basis of ``M(x_1)`` (coordinates;
    the DFT): there ``d/dt (v1 + v2)_j = g_j (v1 + v2)_j`` with ``g_j`` proportional to the
    singular value ``s_j`` of ``M(x_1)``, so the minor coordinate of ``beta`` grows like the
    major one to the power ``s_2/s_1``, and with ``beta_major ~ log t`` the angle falls like
    ``(log t)^{-(1 - s_2/s_1)}``: 1/2 for diagonal (``s = (2, 1)``), 2/3 for convolutional
    (``s = (3, 1)``). Fully connected: the part of ``W_1`` orthogonal to ``x_1`` stops moving,
    and multiplied by ``w_2``, which grows like ``(log t)^{1/2}`` (balancedness), it leaves an
    off-direction part of ``beta`` of that order: ``p = 1/2``.
    """
    if arch == "fc":
        return 0.5
    from ..references.tensor_svd import data_tensor

    s = np.linalg.svd(data_tensor(model, x_support), compute_uv=False)
    return float(1.0 - s[1] / s[0])


def _fig3_gd(spec: tuple) -> dict[str, Any]:
    """One GD run of the classification experiment (checkpointed through ``ctx.train``)."""
    ctx, arch, j, z, alpha, T, lr, direction = spec
    model = section6_models()[arch]
    run = ctx.train(
        f"gd-{arch}-a{alpha:g}-z{j + 1}",
        X_CLS,
        Y_CLS,
        model=model,
        loss="exp",
        init=section6_init(arch, z),
        init_scale=alpha,
        steps=T,
        lr=lr,
        record=40,
        reference=None,
    )
    h = run.history
    betas = np.vstack([alpha**2 * z, np.asarray(h.iterates, dtype=np.float64)])
    steps = np.r_[0, np.asarray(h["step"], dtype=np.float64)]
    loss0 = float(np.sum(np.exp(-(X_CLS * Y_CLS[:, None]) @ (alpha**2 * z))))
    return {
        "arch": arch,
        "j": j,
        "alpha": alpha,
        "steps": steps,
        "betas": betas,
        "loss": np.r_[loss0, np.asarray(h["loss"], dtype=np.float64)],
        "angle": _angle_deg(betas, direction),
    }


def _fig3_flow(spec: tuple) -> dict[str, Any]:
    """Gradient flow from the same initialization to ``log t`` in ``horizons``."""
    arch, j, z, alpha, horizons, direction = spec
    model = section6_models()[arch]
    kw = dict(
        model=model, loss="exp", init=section6_init(arch, z), init_scale=alpha, reference=None
    )
    log_t, betas = [], []
    for L in horizons:
        lo, hi = (max(1.0, log_t[-1]) if log_t else 1.0), min(L, 700.0)
        # records log-spaced in log t (explicit times must be finite floats: up to e^700)
        lts = np.geomspace(lo, hi, 24)[:-1] if lo < hi else np.array([min(1.0, L / 2)])
        run = fb.flow(X_CLS, Y_CLS, log_t_max=L, record=np.exp(lts), **kw)
        if run.status != "completed":
            raise RuntimeError(f"gradient flow to log t = {L:g} ended with {run.status!r}")
        lt = np.asarray(run.history["log_time"], dtype=np.float64)
        keep = lt > (log_t[-1] if log_t else -np.inf)
        log_t += list(lt[keep])
        betas += list(np.asarray(run.history.iterates, dtype=np.float64)[keep])
    betas = np.asarray(betas)
    return {
        "arch": arch,
        "j": j,
        "alpha": alpha,
        "log_t": np.asarray(log_t),
        "betas": betas,
        "angle": _angle_deg(betas, direction),
    }


@target(
    "yun2021-fig3",
    paper=PAPER,
    title="Figure 3: classification directions depend on the init at T; flow to log t = 1e5 "
    "converges",
    plot=lambda outcome, out: plot_figure3(outcome, out),
    seconds_full=27.9,
    seconds_quick=9.1,
)
def figure3(ctx: Context) -> Outcome:
    """Figure 3: GD on two separable points; the directions at the paper's horizon depend on the
    initialization, and converge to the predicted max-margin directions only much later.

    Settings as the paper states them (Section 6): the networks and initial directions of
    ``yun2021-fig1`` (:func:`section6_init`), data ``((1, 2), +1)`` and ``((0, -3), -1)``,
    exponential loss summed over the points (Section 2.1), ``alpha in {0.01, 0.5, 1}``, GD with
    ``eta = 5e-4`` for ``T = 2e6`` steps (``--quick``: ``T = 2e5``). The paper's claims:

    - the max-margin directions (L2: fully connected, Corollary 1; L1: diagonal, Corollary 2;
      DFT-L1: convolutional, Corollary 3) equal the min-norm directions of the regression
      problem of Figure 1 (checked with the package's exact solvers);
    - all runs reach ``L <~ 1e-5`` at T; read as "of order 1e-5 or less", i.e.
      ``log10 L(T) <= -4.5`` (the summed loss is 1.5-2.7e-5 here, the mean 0.8-1.3e-5); for
      ``--quick`` the bound is scaled by ``(t log t)`` at the full over the quick horizon
      (``t = eta T``): the margin of a 2-homogeneous network grows as
      ``d gamma/dt ~ L ||grad gamma||^2`` with ``||grad gamma||^2 ~ gamma``, so
      ``L ~ 1/(t log t)``;
    - "in contrast to our theoretical characterization, the actual coefficients are quite
      dependent on initialization, because we do not train the network all the way to zero
      loss": measured as the spread (max - min over ``z_j`` and alpha) of the angle between
      ``beta(T)`` and the predicted direction; "quite dependent" is taken as a spread of at
      least 1 degree (visible in the figure);
    - the theory itself: the directions do converge to the predicted ones. Gradient flow
      (fastbias.flow, integrated in ``log t``) from the same initializations to
      ``log t = 1e3, 1e4, 1e5`` (``--quick``: ``1e2, 1e3, 1e4``): every angle decreases, and
      falls like ``(log t)^{-p}`` with the exponent derived in :func:`_rate_exponent` (1/2
      fully connected and diagonal, 2/3 convolutional); the local exponent over the last
      decade must be within 10 % of ``p`` (25 % for ``--quick``, whose decade is earlier in the
      pre-asymptotic regime). At ``log t = 1e5`` (``t = e^100000``) the largest angle is
      0.1-0.3 degrees, from up to 27 degrees at the paper's T: the slow ``(log t)^{-1/2}``
      convergence is why the paper's horizon shows the dependence on initialization.
    """
    T = ctx.horizon(2_000_000, 200_000)
    T_full = 2_000_000
    lr = 5e-4
    horizons = ctx.pick((1e3, 1e4, 1e5), (1e2, 1e3, 1e4))
    Z = initial_directions()
    models = section6_models()
    preds = {a: fb.predicted_limit(models[a], X_CLS, Y_CLS) for a in ARCHS}
    dirs = {a: np.asarray(preds[a].direction) for a in ARCHS}
    regs = {a: np.asarray(min_norm(X_REG, Y_REG, norm=NORMS[a]).coef) for a in ARCHS}
    gd = ctx.map(
        _fig3_gd,
        [
            (ctx, arch, j, Z[j], alpha, T, lr, dirs[arch])
            for arch in ARCHS
            for alpha in ALPHAS
            for j in range(len(Z))
        ],
    )
    fl = ctx.map(
        _fig3_flow,
        [
            (arch, j, Z[j], alpha, horizons, dirs[arch])
            for arch in ARCHS
            for alpha in ALPHAS
            for j in range(len(Z))
        ],
    )
    source = f"{PAPER}, Section 6, Figure 3"

    mm_angle = {a: float(np.radians(_angle_deg(dirs[a], regs[a])[0])) for a in ARCHS}
    loss_T = np.array([r["loss"][-1] for r in gd])
    # the loss of a 2-homogeneous model falls like 1/(t log t) (t = eta k): the margin grows
    # as d gamma/dt ~ L ||grad gamma||^2 with ||grad gamma||^2 ~ gamma ~ log t
    t_full, t_run = lr * T_full, lr * T
    scale = (t_full * np.log(t_full)) / (t_run * np.log(t_run)) if T != T_full else 1.0
    bound = 10**-4.5 * scale
    claims = [
        C.at_most(
            "max-margin directions = regression min-norm directions",
            f"{PAPER}, Section 6",
            1e-7,
            max(mm_angle.values()),
            predicted="angle 0",
            note="angle (radians) between fastbias.predicted_limit's direction (exact "
            "max-margin solver) and fastbias.min_norm's solution on x = (1, 2), y = 1: "
            + ", ".join(
                f"{a}: {preds[a].theorem.split(':')[-1].strip()} "
                f"{np.array2string(np.asarray(preds[a].coef), precision=6)} vs "
                f"{NORM_NAMES[a]} {np.array2string(regs[a], precision=6)}"
                for a in ARCHS
            )
            + "; tolerance: the solvers' accuracy",
        ),
        C.at_most(
            f"all runs reach L <~ 1e-5 at T = {T:.0e}",
            source,
            bound,
            float(loss_T.max()),
            predicted="<~ 1e-5",
            note=f"summed exp loss at T between {loss_T.min():.3g} and {loss_T.max():.3g} (mean "
            f"over the 2 points: half); '<~ 1e-5' read as log10 L <= -4.5"
            + (
                f", times {scale:.3g} = (t log t at T_full) / (t log t at T), t = eta T: the "
                "loss of a 2-homogeneous network falls like 1/(t log t)"
                if T != T_full
                else ""
            ),
        ),
    ]
    for arch in ARCHS:
        rs = [r for r in gd if r["arch"] == arch]
        ang_T = np.array([r["angle"][-1] for r in rs])
        claims.append(
            C.at_least(
                f"{arch}: direction at T depends on the initialization",
                f"{source} ('quite dependent on initialization')",
                1.0,
                float(ang_T.max() - ang_T.min()),
                predicted="spread >= 1 degree",
                note=f"angle between beta(T) and the predicted {NORM_NAMES[arch][4:]} direction "
                f"over the 4 z_j x 3 alpha: {ang_T.min():.3g} to {ang_T.max():.3g} degrees",
            )
        )
        fs = [r for r in fl if r["arch"] == arch]
        p = _rate_exponent(arch, models[arch], X_CLS[0] * Y_CLS[0])
        exps, decreasing, last = [], True, []
        for r in fs:
            ends = [int(np.argmin(np.abs(r["log_t"] - L))) for L in horizons]
            a_end = r["angle"][ends]
            decreasing &= bool(np.all(np.diff(a_end) < 0))
            exps.append(-np.log(a_end[-1] / a_end[-2]) / np.log(horizons[-1] / horizons[-2]))
            last.append(a_end[-1])
        exps = np.array(exps)
        tol = ctx.pick(0.1, 0.25) * p
        worst = float(exps[np.argmax(np.abs(exps - p))])
        claims.append(
            C.holds(
                f"{arch}: flow direction -> predicted one, ~ (log t)^-p",
                f"{PAPER}, Corollaries 1-3 (rate: see note)",
                f"p = {p:.4g}",
                f"{exps.min():.4g} .. {exps.max():.4g}",
                decreasing and bool(np.all(np.abs(exps - p) <= tol)),
                f"angles decrease; |p_meas - p| <= {tol:.3g}",
                value=worst,
                note=f"gradient flow to log t = {', '.join(f'{L:g}' for L in horizons)}; local "
                f"exponent over the last decade of log t for the 12 runs; angle at log t = "
                f"{horizons[-1]:g}: {min(last):.3g} to {max(last):.3g} degrees (at T: up to "
                f"{ang_T.max():.3g}); p derived in yun2021._rate_exponent",
            )
        )

    traj: dict[str, list] = {
        k: []
        for k in ("arch", "alpha", "z_index", "step", "t", "beta_0", "beta_1", "loss", "angle_deg")
    }
    for r in gd:
        n = len(r["steps"])
        traj["arch"] += [r["arch"]] * n
        traj["alpha"] += [r["alpha"]] * n
        traj["z_index"] += [r["j"]] * n
        traj["step"] += list(r["steps"])
        traj["t"] += list(lr * r["steps"])
        traj["beta_0"] += list(r["betas"][:, 0])
        traj["beta_1"] += list(r["betas"][:, 1])
        traj["loss"] += list(r["loss"])
        traj["angle_deg"] += list(r["angle"])
    flow_t: dict[str, list] = {
        k: [] for k in ("arch", "alpha", "z_index", "log_t", "beta_0", "beta_1", "angle_deg")
    }
    for r in fl:
        n = len(r["log_t"])
        flow_t["arch"] += [r["arch"]] * n
        flow_t["alpha"] += [r["alpha"]] * n
        flow_t["z_index"] += [r["j"]] * n
        flow_t["log_t"] += list(r["log_t"])
        flow_t["beta_0"] += list(r["betas"][:, 0])
        flow_t["beta_1"] += list(r["betas"][:, 1])
        flow_t["angle_deg"] += list(r["angle"])
    directions = {
        "arch": list(ARCHS),
        "theorem": [preds[a].theorem for a in ARCHS],
        "max_margin_0": [float(preds[a].coef[0]) for a in ARCHS],
        "max_margin_1": [float(preds[a].coef[1]) for a in ARCHS],
        "min_norm_0": [float(regs[a][0]) for a in ARCHS],
        "min_norm_1": [float(regs[a][1]) for a in ARCHS],
        "rate_p": [_rate_exponent(a, models[a], X_CLS[0]) for a in ARCHS],
    }
    report = [
        f"Classification on ((1, 2), +1), ((0, -3), -1); GD eta = {lr:g}, T = {T:.0e}; "
        f"gradient flow to log t = {horizons}",
        "angle to the predicted direction (degrees): at T | flow at each log t",
    ]
    for r, f in zip(gd, fl, strict=True):
        ends = [int(np.argmin(np.abs(f["log_t"] - L))) for L in horizons]
        report.append(
            f"{r['arch']:5s} alpha={r['alpha']:<5g} z_{r['j'] + 1}: {r['angle'][-1]:8.4f}"
            f" | "
            + " ".join(f"{a:.4g}" for a in f["angle"][ends])
            + f"   L(T) = {r['loss'][-1]:.3g}"
        )
    return Outcome(
        claims=claims,
        tables={
            "figure3_trajectories": traj,
            "figure3_flow": flow_t,
            "figure3_directions": directions,
        },
        settings={
            "data": "((1, 2), +1), ((0, -3), -1)",
            "loss": "exp (summed)",
            "models": {a: repr(m) for a, m in models.items()},
            "alphas": list(ALPHAS),
            "directions": Z,
            "init": "v1_bar = 2 * identity, v2_bar = z_j / 2 (section6_init)",
            "lr": lr,
            "steps": T,
            "flow_log_t": list(horizons),
        },
        report="\n".join(report),
    )


def plot_figure3(outcome: Outcome, out: Path) -> list[Path]:
    """Figure 3: GD trajectories of beta in the plane with the predicted directions (rows:
    alpha; columns: architecture), and the angle to the predicted direction against log t,
    GD then gradient flow."""
    t = outcome.tables
    tr, fl, dirs = t["figure3_trajectories"], t["figure3_flow"], t["figure3_directions"]
    arch_col, zi = np.asarray(tr["arch"]), np.asarray(tr["z_index"])
    alpha_col = np.asarray(tr["alpha"], dtype=float)
    b0, b1 = np.asarray(tr["beta_0"], dtype=float), np.asarray(tr["beta_1"], dtype=float)
    alphas = sorted(set(alpha_col.tolist()))
    zs = sorted(set(zi.tolist()))
    fig, axes = figure(len(alphas) + 1, len(ARCHS), width=13.5, height=4.3 * (len(alphas) + 1))
    T = float(np.asarray(tr["step"], dtype=float).max())
    for row, alpha in enumerate(alphas):
        for col, arch in enumerate(ARCHS):
            ax = axes[row * len(ARCHS) + col]
            m = (arch_col == arch) & (alpha_col == alpha)
            hi = 1.1 * max(np.abs(b0[m]).max(), np.abs(b1[m]).max())
            lo = -min(hi, 1.1 * max(-b0[m].min(), -b1[m].min(), 0.15 * hi))
            k = list(dirs["arch"]).index(arch)
            u = np.array([dirs["max_margin_0"][k], dirs["max_margin_1"][k]])
            u = u / np.linalg.norm(u)
            ax.plot(
                [0, 2 * hi * u[0]],
                [0, 2 * hi * u[1]],
                color="gold",
                lw=3,
                alpha=0.8,
                label="predicted direction",
            )
            for j in zs:
                mm = m & (zi == j)
                color = Z_COLORS[j % len(Z_COLORS)]
                ax.plot(b0[mm], b1[mm], color=color, lw=1.3, label=f"GD from alpha^2 z_{j + 1}")
                ax.plot(b0[mm][0], b1[mm][0], "o", color=color, ms=5, mfc="white")
                ax.plot(b0[mm][-1], b1[mm][-1], "o", color=color, ms=6)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            _plane_axes(ax, f"{NAMES[arch]}, alpha = {alpha:g}")
    handles, labels = axes[0].get_legend_handles_labels()
    f_arch, f_alpha = np.asarray(fl["arch"]), np.asarray(fl["alpha"], dtype=float)
    f_z, f_lt = np.asarray(fl["z_index"]), np.asarray(fl["log_t"], dtype=float)
    f_ang = np.asarray(fl["angle_deg"], dtype=float)
    t_col = np.asarray(tr["t"], dtype=float)
    ang_col = np.asarray(tr["angle_deg"], dtype=float)
    for col, arch in enumerate(ARCHS):
        ax = axes[len(alphas) * len(ARCHS) + col]
        for alpha in alphas:
            color = ALPHA_COLORS.get(alpha, "k")
            for j in zs:
                m = (arch_col == arch) & (alpha_col == alpha) & (zi == j) & (t_col >= np.e)
                ax.loglog(np.log(t_col[m]), ang_col[m], color=color, lw=1.5, alpha=0.8)
                m = (f_arch == arch) & (f_alpha == alpha) & (f_z == j) & (f_lt >= 1)
                ax.loglog(f_lt[m], f_ang[m], "--", color=color, lw=1, alpha=0.8)
            ax.plot([], [], color=color, label=f"alpha = {alpha:g}")
        k = list(dirs["arch"]).index(arch)
        p = float(dirs["rate_p"][k])
        m = (f_arch == arch) & (f_lt > 10)
        if m.any():
            x_end = f_lt[m].max()
            y_end = f_ang[m][f_lt[m] == x_end].max()
            xs = np.geomspace(10, x_end, 20)
            ax.loglog(
                xs, y_end * (xs / x_end) ** -p, "k:", lw=1.5, label=f"(log t)^-{p:.3g} (derived)"
            )
        ax.axvline(np.log(5e-4 * T), color="0.5", lw=0.8)
        ax.set_title(f"{NAMES[arch]}: angle to the predicted direction", fontsize=10)
        ax.set_xlabel("log t  (t = eta k; solid GD to T, dashed gradient flow)")
        ax.set_ylabel("angle (degrees)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.legend(
        handles, labels, loc="lower center", ncol=5, fontsize=9, bbox_to_anchor=(0.5, -0.015)
    )
    fig.suptitle(
        f"{PAPER}, Figure 3: classification ((1, 2), +1), ((0, -3), -1); GD eta = "
        f"5e-4, T = {T:.0e} (filled dots: beta(T)); last row: gradient flow far past T",
        fontsize=11,
        y=1.005,
    )
    return [save(fig, out / "figure3.png")]


# ------------------------------------------------------------------------------------------
# Theorem 6, Corollaries 5-7, Remark 4
# ------------------------------------------------------------------------------------------

#: Integrator tolerance of the gradient-flow checks.
FLOW_RTOL = 1e-10


def _flow_and_gd(spec: tuple) -> dict[str, Any]:
    """Gradient flow to rest and GD (at eta, and at eta/2 for Richardson's estimate) from one
    initialization, against a predicted limit point ``pred`` (and predicted layers)."""
    case, model, X, y, init, alpha, pred, layers, lr, T = spec
    kw = dict(model=model, loss="squared", init=init, init_scale=alpha)
    flow = fb.flow(X, y, t_max=1e7, rtol=FLOW_RTOL, atol=1e-14, record=[1e7], **kw)
    scale = max(1.0, float(np.abs(flow.coef).max()))
    gap = float(np.abs(flow.coef - pred).max())
    if layers is not None:
        gap = max(
            gap,
            *(
                float(np.abs(np.ravel(a) - np.ravel(b)).max())
                for a, b in zip(flow.params, layers, strict=True)
            ),
        )
    out = {
        "case": case,
        "alpha": alpha,
        "flow_gap": gap,
        "flow_tol": flow.settings["accepted_steps"] * FLOW_RTOL * scale,
        "flow_status": flow.status,
        "flow_coef": flow.coef,
        "gd_dist": np.nan,
        "gd_tol": np.nan,
    }
    if lr is not None:
        gd = fb.train(X, y, steps=3 * T, lr=lr, record=[T, 2 * T, 3 * T], **kw)
        half = fb.train(X, y, steps=6 * T, lr=lr / 2, record=[6 * T], **kw)
        b_T, b_2T, b_3T = (np.asarray(r, dtype=np.float64) for r in gd.history.iterates)
        out["gd_dist"] = float(np.abs(b_3T - pred).max())
        out["gd_tol"] = _tail(b_T, b_2T, b_3T) + 2.5 * float(np.abs(b_3T - half.coef).max())
    return out


def _tail(b1: np.ndarray, b2: np.ndarray, b3: np.ndarray) -> float:
    """How far GD still moves after ``b3 = beta(3T)``, from ``beta(T), beta(2T), beta(3T)``:
    the geometric tail ``|b2 - b3| q / (1 - q)`` with ``q = |b2 - b3| / |b1 - b2|`` (linear
    convergence near the limit); ``inf`` when the run is not contracting yet (``q >= 1``).
    Differences at round-off level (``1e-13 max|beta|``) count as converged."""
    noise = 1e-13 * max(1.0, float(np.abs(b3).max()))
    d12, d23 = float(np.abs(b1 - b2).max()), float(np.abs(b2 - b3).max())
    if d23 <= noise:
        return noise
    q = d23 / d12
    return d23 * q / (1.0 - q) if q < 1.0 else float("inf")


def _draw_theorem6_init(model: Any, x: np.ndarray, rng: np.random.Generator) -> list:
    """Gaussian initial directions (second layer at half scale) redrawn until Theorem 6's
    condition ``lambda > 0`` holds."""
    shapes = model.shapes(x.shape[0])
    for _ in range(1000):
        init = [rng.standard_normal(shapes[0]), 0.5 * rng.standard_normal(shapes[1])]
        if two_layer_limit_point(model, x, 1.0, init, 1.0).condition > 0:
            return init
    raise RuntimeError(f"no initialization satisfying Theorem 6's condition for {model!r}")


def _even(v: np.ndarray) -> np.ndarray:
    """The even part of ``v`` (``v[k] = v[d - k]``, 0-based), as Corollary 6 needs."""
    return 0.5 * (v + np.roll(v[::-1], 1))


def matrix_sensing_model(d: int, depth: int):
    """Deep matrix sensing ``<A, W_1 ... W_L>`` (Yun eq. 13) as a linear tensor network on the
    input ``vec(A)`` (C order): ``beta = vec(W_1 ... W_L)``, layers ``vec(W_l)``."""
    from ..models import Tensor

    rows = []
    for idx in itertools.product(range(d), repeat=depth + 1):  # i, k_1, ..., k_{L-1}, j
        i, j = idx[0], idx[-1]
        rows.append((i * d + j, [idx[m] * d + idx[m + 1] for m in range(depth)]))
    jidx = np.array([r[0] for r in rows], dtype=np.int64)
    multi = np.array([r[1] for r in rows], dtype=np.int64)
    return Tensor(
        (jidx, multi, np.ones(len(rows))),
        shape=(d * d,) + (d * d,) * depth,
        label=f"matrix sensing d={d}, L={depth}",
    )


def _weighted_l1(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``argmin sum_j w_j |z_j|  s.t.  X z = y`` (HiGHS LP), Remark 4's alpha -> 0 limit."""
    from scipy.optimize import linprog

    d = X.shape[1]
    res = linprog(np.r_[w, w], A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:  # pragma: no cover
        raise RuntimeError(f"weighted L1 LP failed: {res.message}")
    return res.x[:d] - res.x[d:]


def _weighted_l2(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``argmin sum_j z_j^2 / w_j  s.t.  X z = y``: ``W X^T (X W X^T)^{-1} y``."""
    return w * (X.T @ np.linalg.solve((X * w) @ X.T, y))


@target(
    "yun2021-thm6",
    paper=PAPER,
    title="Theorem 6 and Corollaries 5-7: regression limit points in closed form vs GD / flow",
    plot=lambda outcome, out: plot_theorem6(outcome, out),
    seconds_full=28.7,
    seconds_quick=8.4,
)
def theorem6(ctx: Context) -> Outcome:
    """Theorem 6 (two layers, one point) and Theorem 5's Corollaries 5-7 (several points):
    the closed-form limit points against gradient flow and GD, and Remark 4's regimes.

    The theorems are about gradient flow on ``1/2 sum (f(x_i) - y_i)^2``; each case is checked
    (a) with the package's flow integrator run to rest (rtol 1e-10), whose limit must match the
    closed form to the integrator's global error bound (accepted steps x rtol x max|beta|),
    and (b) with GD at a fixed step: ``beta(3T)`` must match to the distance GD still moves
    after 3T (the geometric tail from ``beta(T), beta(2T), beta(3T)``, see :func:`_tail`) +
    2.5 x Richardson's ``O(eta)`` estimate ``|beta_eta(3T) - beta_{eta/2}(6T)|`` (as in
    yun2021-fig1).
    The paper gives no experiment here; the problems are chosen small and underdetermined:

    - Theorem 6: one point ``x`` in R^5 (seeded Gaussian), ``y = 1``; fully connected (hidden
      width 3), diagonal, convolutional with full-length filters and with filters of length 2
      (not orthogonally decomposable: Theorem 6 is the only result covering it); Gaussian
      initial directions (second layer at half scale) redrawn until Theorem 6's
      ``lambda > 0``; alpha in {0.1, 0.5, 1, 2}; GD eta = 1e-3, T = 2e4. The limit layers
      ``v_1, v_2`` are compared as well as ``beta``. (The package warns that the length-2
      filters fail its data-free sufficient condition of Corollary 4; Theorem 6's condition
      for this x holds, and that warning is silenced.)
    - Corollary 5: a diagonal network of depth 2 and 3 on 3 points in R^6 from
      ``w_l(0) = alpha w_bar`` (l < L), ``w_L(0) = 0``, two random ``w_bar``; alpha in
      {0.25, 0.5, 1, 2}; GD eta = 5e-4, T = 1e5.
    - Corollary 6: a full-length convolutional network of depth 2 and 3 on 2 even points in
      R^5, two even ``w_bar`` (``[F w_bar]_j != 0``), alpha in {0.5, 1} (GD eta = 5e-4,
      T = 1e5; at alpha = 2 the depth-3 network needs eta < 1e-5, at 0.25 GD has not
      arrived by T). The corollary as printed minimizes ``Q(F z)``; Theorem 5 with
      ``S = d^{(L-1)/2} F`` (Appendix D.3) gives ``Q(F z / d^{(L-1)/2})``, which is what
      gradient flow reaches (the package's README records this printed constant). The printed
      form is a documented failing claim: its minimizer misses the flow's limit by far more
      than the tolerance.
    - Corollary 7: deep matrix sensing (depth 2 and 3) with two commuting symmetric 3x3
      sensors, ``W_l(0) = alpha I``, ``W_L(0) = 0``, run as a linear tensor network on
      ``vec(A)`` (:func:`matrix_sensing_model`); the loss ``1/2 sum r^2`` instead of eq. 13's
      ``sum r^2`` only rescales time; alpha in {0.5, 1}, GD eta = 2e-3, T = 1e5 (from
      ``W_L(0) = 0`` at alpha = 0.5 the depth-3 product needs t ~ 500 to settle).
    - Remark 4 (diagonal, Corollary 5's problem): as alpha -> inf the limit tends to the
      weighted min-L2 interpolant (weights ``w_bar^{2L-2}``) with distance ~ alpha^{-2L}
      (``H_L(t) = t^2/2 + O(t^4)``), as alpha -> 0 to the weighted min-L1 one (weights
      ``|w_bar|^{2-L}``; plain L1 for L = 2). For L >= 3 the off-support coordinates are
      ``alpha^L |w_bar|^L h_L(u_j)`` with ``u_j`` below Lemma 4's radius, so the distance is
      ~ alpha^L; for L = 2 ``h_2`` is unbounded and the approach is slow and data dependent
      (checked as a monotone decrease). Exponents are measured on gradient-flow limits at two
      scales and must be within 10 % of the law.

    ``--quick``: fewer initial directions and scales, the same claims and tolerances.
    """
    rng = np.random.default_rng(6)
    x1 = rng.standard_normal(5)
    X1, Y1 = x1[None], np.array([1.0])
    thm6_models = {
        "fully connected": FullyConnected([3]),
        "diagonal": Diagonal(2),
        "conv k=d": Convolutional(2),
        "conv k=2": Convolutional(2, [2]),
    }
    n_init = ctx.pick(3, 1)
    alphas6 = ctx.pick((0.1, 0.5, 1.0, 2.0), (0.1, 2.0))
    specs, lams = [], []
    for name, model in thm6_models.items():
        for _ in range(n_init):
            init = _draw_theorem6_init(model, x1, rng)
            for alpha in alphas6:
                pt = two_layer_limit_point(model, x1, 1.0, init, alpha)
                pred = fb.predicted_limit(
                    model, X1, Y1, loss="squared", init=init, init_scale=alpha
                )
                if "Theorem 6" not in pred.theorem or not np.allclose(
                    pred.coef, pt.coef, rtol=1e-12, atol=1e-14
                ):
                    raise RuntimeError(f"predicted_limit disagrees with Theorem 6: {pred.theorem}")
                lams.append(pt.condition)
                specs.append(
                    (
                        f"Theorem 6: {name}",
                        model,
                        X1,
                        Y1,
                        init,
                        alpha,
                        pt.coef,
                        pt.layers,
                        1e-3,
                        20_000,
                    )
                )

    # Corollary 5: diagonal, several points
    rng = np.random.default_rng(2021)
    X5, Y5 = rng.standard_normal((3, 6)), rng.standard_normal(3)
    w_bars = [rng.uniform(0.5, 1.5, 6) * rng.choice([-1.0, 1.0], 6) for _ in range(2)]
    alphas5 = ctx.pick((0.25, 0.5, 1.0, 2.0), (0.5, 2.0))
    for L in (2, 3):
        for wb in w_bars[: ctx.pick(2, 1)]:
            init = [wb] * (L - 1) + [np.zeros(6)]
            for alpha in alphas5:
                pred = fb.predicted_limit(
                    Diagonal(L), X5, Y5, loss="squared", init=init, init_scale=alpha
                )
                assert "Corollary 5" in pred.theorem, pred.theorem
                specs.append(
                    (
                        f"Corollary 5: diagonal L={L}",
                        Diagonal(L),
                        X5,
                        Y5,
                        init,
                        alpha,
                        pred.coef,
                        None,
                        5e-4,
                        100_000,
                    )
                )

    # Corollary 6: full-length convolution, even data
    rng = np.random.default_rng(6_6)
    X6 = np.array([_even(rng.standard_normal(5)) for _ in range(2)])
    Y6 = rng.standard_normal(2)
    w6 = [_even(rng.standard_normal(5)) + np.array([2.0, 0, 0, 0, 0]) for _ in range(2)]
    F = np.fft.fft(np.eye(5)) / np.sqrt(5)
    printed: list[tuple[int, float, float, np.ndarray]] = []
    alphas6c = ctx.pick((0.5, 1.0), (1.0,))
    for L in (2, 3):
        for k, wb in enumerate(w6[: ctx.pick(2, 1)]):
            init = [wb] * (L - 1) + [np.zeros(5)]
            for alpha in alphas6c:
                pred = fb.predicted_limit(
                    Convolutional(L), X6, Y6, loss="squared", init=init, init_scale=alpha
                )
                assert "Corollary 6" in pred.theorem, pred.theorem
                as_printed = fb.references.q_minimizer(X6, Y6, L, alpha, (F @ wb).real, F.real)
                printed.append((L, alpha, k, np.asarray(as_printed.coef)))
                specs.append(
                    (
                        f"Corollary 6: conv L={L}",
                        Convolutional(L),
                        X6,
                        Y6,
                        init,
                        alpha,
                        pred.coef,
                        None,
                        5e-4,
                        100_000,
                    )
                )

    # Corollary 7: deep matrix sensing with commuting sensors
    rng = np.random.default_rng(7)
    Q = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    A = np.stack([Q @ np.diag(rng.standard_normal(3)) @ Q.T for _ in range(2)])
    Y7 = rng.standard_normal(2)
    X7 = A.reshape(2, 9)
    for L in (2, 3):
        model = matrix_sensing_model(3, L)
        init = [np.eye(3).ravel()] * (L - 1) + [np.zeros(9)]
        for alpha in ctx.pick((0.5, 1.0), (1.0,)):
            lim = fb.references.matrix_sensing_limit(A, Y7, L, alpha)
            specs.append(
                (
                    f"Corollary 7: matrix sensing L={L}",
                    model,
                    X7,
                    Y7,
                    init,
                    alpha,
                    lim.matrix.ravel(),
                    None,
                    2e-3,
                    100_000,
                )
            )

    with warnings.catch_warnings():
        # the filters of length 2 get the package's data-free Corollary 4 check, which these
        # initializations need not pass; Theorem 6's own condition holds by the draw
        warnings.filterwarnings("ignore", message="the initialization does not satisfy")
        checks = ctx.map(_flow_and_gd, specs)

    # Remark 4: alpha -> 0 and alpha -> inf on Corollary 5's problem (first w_bar)
    wb = w_bars[0]
    regime_specs = []
    ladders = {
        2: {"l1": (1.0, 0.1, 0.01), "l2": (4.0, 8.0)},
        3: {"l1": (0.05, 0.02), "l2": (4.0, 8.0)},
    }
    for L, lad in ladders.items():
        init = [wb] * (L - 1) + [np.zeros(6)]
        for alpha in sorted(set(lad["l1"] + lad["l2"])):
            pred = fb.references.diagonal_regression_limit(X5, Y5, L, alpha, wb)
            regime_specs.append(
                (
                    f"Remark 4: diagonal L={L}",
                    Diagonal(L),
                    X5,
                    Y5,
                    init,
                    alpha,
                    pred.coef,
                    None,
                    None,
                    0,
                )
            )
    regime = ctx.map(_flow_and_gd, regime_specs)
    targets_l1 = {L: _weighted_l1(X5, Y5, np.abs(wb) ** (2.0 - L)) for L in ladders}
    targets_l2 = {L: _weighted_l2(X5, Y5, np.abs(wb) ** (2.0 * L - 2)) for L in ladders}

    claims: list[C.Claim] = []
    cases = list(dict.fromkeys(c["case"] for c in checks))
    for case in cases:
        rs = [c for c in checks if c["case"] == case]
        gaps = np.array([c["flow_gap"] for c in rs])
        tols = np.array([c["flow_tol"] for c in rs])
        thm = case.split(":")[0]
        claims.append(
            C.holds(
                f"{case}: gradient flow -> the closed form",
                f"{PAPER}, {thm}",
                "0",
                f"max {gaps.max():.3g}",
                bool(np.all(gaps <= tols)) and all(c["flow_status"] != "max_steps" for c in rs),
                f"<= integrator bound (max {tols.max():.3g})",
                value=float(gaps.max()),
                note=f"{len(rs)} runs (initial directions x alpha = "
                f"{sorted(set(c['alpha'] for c in rs))}); max |flow - prediction| over beta"
                + (
                    f" and the layers v1, v2 (Theorem 6's lambda >= {min(lams):.3g})"
                    if thm == "Theorem 6"
                    else ""
                )
                + "; bound: accepted steps x rtol 1e-10 x max|beta|",
            )
        )
    for thm in ("Theorem 6", "Corollary 5", "Corollary 6", "Corollary 7"):
        rs = [c for c in checks if c["case"].startswith(thm)]
        d = np.array([c["gd_dist"] for c in rs])
        tl = np.array([c["gd_tol"] for c in rs])
        worst = int(np.argmax(d / tl))
        claims.append(
            C.holds(
                f"{thm}: GD's limit -> the closed form (+ O(eta))",
                f"{PAPER}, {thm}",
                "0 (+ O(eta))",
                f"max {d.max():.3g}",
                bool(np.all(d <= tl)),
                f"per run <= O(eta) bound (max {tl.max():.3g})",
                value=float(d.max()),
                note=f"{len(rs)} runs; max |beta_GD(3T) - prediction|; worst ratio to its bound "
                f"tail(3T) + 2.5 |beta_eta - beta_eta/2|: {d[worst] / tl[worst]:.2f}",
            )
        )
    # the printed Corollary 6 objective Q(F z)
    flow6 = [c for c in checks if c["case"].startswith("Corollary 6")]
    miss = np.array(
        [float(np.abs(p[3] - c["flow_coef"]).max()) for p, c in zip(printed, flow6, strict=True)]
    )
    tol6 = max(c["flow_tol"] for c in flow6)
    claims.append(
        C.at_most(
            "Corollary 6 as printed, min Q(F z): the flow's limit",
            f"{PAPER}, Corollary 6 (Appendix A.4)",
            tol6,
            float(miss.min()),
            predicted="0",
            expected=False,
            note=f"smallest over {len(miss)} runs of max |argmin Q(F z) - flow limit| (largest "
            f"{miss.max():.3g}); Theorem 5 with S = d^((L-1)/2) F (Appendix D.3) gives "
            "Q(F z / d^((L-1)/2)), which the flow matches (claim above): the printed objective "
            "drops the factor d^(-(L-1)/2)",
        )
    )

    reg_rows: dict[str, list] = {k: [] for k in ("L", "alpha", "source", "dist_l1", "dist_l2")}
    for c in regime:
        L = int(c["case"][-1])
        reg_rows["L"].append(L)
        reg_rows["alpha"].append(c["alpha"])
        reg_rows["source"].append("gradient flow")
        reg_rows["dist_l1"].append(float(np.linalg.norm(c["flow_coef"] - targets_l1[L])))
        reg_rows["dist_l2"].append(float(np.linalg.norm(c["flow_coef"] - targets_l2[L])))
    for L in ladders:
        for alpha in np.geomspace(0.01, 10.0, 31):
            coef = fb.references.diagonal_regression_limit(X5, Y5, L, alpha, wb).coef
            reg_rows["L"].append(L)
            reg_rows["alpha"].append(float(alpha))
            reg_rows["source"].append("Corollary 5")
            reg_rows["dist_l1"].append(float(np.linalg.norm(coef - targets_l1[L])))
            reg_rows["dist_l2"].append(float(np.linalg.norm(coef - targets_l2[L])))

    def flow_dist(L: int, alpha: float, key: str) -> float:
        for L_, a_, s_, d1, d2 in zip(
            *(reg_rows[k] for k in ("L", "alpha", "source", "dist_l1", "dist_l2")), strict=True
        ):
            if L_ == L and a_ == alpha and s_ == "gradient flow":
                return d1 if key == "l1" else d2
        raise KeyError((L, alpha))  # pragma: no cover

    for L in ladders:
        a0, a1 = ladders[L]["l2"]
        slope = np.log(flow_dist(L, a1, "l2") / flow_dist(L, a0, "l2")) / np.log(a1 / a0)
        claims.append(
            C.close(
                f"Remark 4, diagonal L={L}: alpha -> inf gives weighted min L2",
                f"{PAPER}, Remark 4 / Corollary 5",
                -2.0 * L,
                float(slope),
                rtol=0.1,
                note=f"slope of log |beta_flow - z_wL2| vs log alpha between alpha = {a0:g} and "
                f"{a1:g} (distances {flow_dist(L, a0, 'l2'):.3g}, {flow_dist(L, a1, 'l2'):.3g}); "
                f"z_wL2 = argmin sum z_j^2 / w_bar_j^{2 * L - 2}; law alpha^(-2L) from "
                "H_L(t) = t^2/2 + O(t^4)",
            )
        )
    a0, a1 = ladders[3]["l1"]
    slope = np.log(flow_dist(3, a1, "l1") / flow_dist(3, a0, "l1")) / np.log(a1 / a0)
    claims.append(
        C.close(
            "Remark 4, diagonal L=3: alpha -> 0 gives weighted min L1",
            f"{PAPER}, Remark 4 / Corollary 5",
            3.0,
            float(slope),
            rtol=0.1,
            note=f"slope of log |beta_flow - z_wL1| vs log alpha between alpha = {a1:g} and "
            f"{a0:g} (distances {flow_dist(3, a1, 'l1'):.3g}, {flow_dist(3, a0, 'l1'):.3g}); "
            "z_wL1 = argmin sum |z_j| / |w_bar_j| (LP); law alpha^L (see the docstring)",
        )
    )
    l1_dists = [flow_dist(2, a, "l1") for a in ladders[2]["l1"]]
    claims.append(
        C.holds(
            "Remark 4, diagonal L=2: alpha -> 0 gives min L1",
            f"{PAPER}, Remark 4 / Corollary 5",
            "decreasing -> 0",
            " > ".join(f"{v:.3g}" for v in l1_dists),
            bool(np.all(np.diff(l1_dists) < 0)),
            "decreasing as alpha decreases",
            value=l1_dists[-1],
            note="|beta_flow - z_L1| at alpha = "
            + ", ".join(f"{a:g}" for a in ladders[2]["l1"])
            + f"; z_L1 = {np.array2string(targets_l1[2], precision=4)} (LP). For L = 2 the "
            "approach is slow (the distance at alpha = 1e-4 is still 0.026 by Corollary 5)",
        )
    )

    lim_rows: dict[str, list] = {
        k: [] for k in ("case", "alpha", "flow_gap", "flow_tol", "gd_dist", "gd_tol")
    }
    for c in checks:
        for k in lim_rows:
            lim_rows[k].append(c[k])
    pr_rows = {
        "L": [p[0] for p in printed],
        "alpha": [p[1] for p in printed],
        "w_bar": [p[2] for p in printed],
        "printed_miss": list(miss),
        "corrected_miss": [c["flow_gap"] for c in flow6],
        "flow_tol": [c["flow_tol"] for c in flow6],
    }
    report = ["case                               alpha   flow gap   bound      GD dist    bound"]
    for c in checks:
        report.append(
            f"{c['case']:34s} {c['alpha']:5g}  {c['flow_gap']:9.2e}  "
            f"{c['flow_tol']:9.2e}  {c['gd_dist']:9.2e}  {c['gd_tol']:9.2e}"
        )
    return Outcome(
        claims=claims,
        tables={
            "theorem6_checks": lim_rows,
            "theorem6_regimes": reg_rows,
            "theorem6_corollary6_printed": pr_rows,
        },
        settings={
            "theorem6": {
                "x": x1,
                "y": 1.0,
                "alphas": list(alphas6),
                "inits_per_model": n_init,
                "lr": 1e-3,
                "steps": 20_000,
            },
            "corollary5": {
                "X": X5,
                "y": Y5,
                "w_bars": w_bars,
                "alphas": list(alphas5),
                "lr": 5e-4,
                "steps": 100_000,
            },
            "corollary6": {"X": X6, "y": Y6, "w_bars": w6, "alphas": list(alphas6c)},
            "corollary7": {"A": A, "y": Y7},
            "remark4": {"ladders": {str(k): v for k, v in ladders.items()}},
            "flow": {"rtol": FLOW_RTOL, "atol": 1e-14, "t_max": 1e7},
        },
        report="\n".join(report),
    )


def plot_theorem6(outcome: Outcome, out: Path) -> list[Path]:
    """Each check's distance to the closed form against its tolerance, and Remark 4's
    regimes: distance of the limit to the weighted min-L1 / min-L2 interpolants vs alpha."""
    t = outcome.tables
    chk, reg, pr = t["theorem6_checks"], t["theorem6_regimes"], t["theorem6_corollary6_printed"]
    fig, axes = figure(1, 3, width=16.5, height=5.0)
    ax = axes[0]
    cases = list(dict.fromkeys(chk["case"]))
    thms = list(dict.fromkeys(c.split(":")[0] for c in cases))
    colors = dict(zip(thms, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False))
    case_col = np.asarray(chk["case"])
    for thm in thms:
        m = np.array([c.startswith(thm) for c in case_col])
        tol = np.asarray(chk["flow_tol"], dtype=float)[m]
        gap = np.maximum(np.asarray(chk["flow_gap"], dtype=float)[m], 1e-17)
        ax.loglog(tol, gap, "o", color=colors[thm], mfc="none", label=f"{thm}: flow")
        tol = np.asarray(chk["gd_tol"], dtype=float)[m]
        gap = np.asarray(chk["gd_dist"], dtype=float)[m]
        ax.loglog(tol, gap, "s", color=colors[thm], ms=4, label=f"{thm}: GD")
    ax.loglog(
        np.asarray(pr["flow_tol"], dtype=float),
        np.asarray(pr["printed_miss"], dtype=float),
        "kx",
        label="Corollary 6 as printed, Q(F z)",
    )
    lims = np.array([1e-15, 1.0])
    ax.loglog(lims, lims, "k--", lw=1, label="tolerance")
    ax.set_xlabel("tolerance (integrator bound / O(eta) bound)")
    ax.set_ylabel("max |limit - closed form|")
    ax.set_title("every check: below the dashed line = holds", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    L_col, a_col = np.asarray(reg["L"]), np.asarray(reg["alpha"], dtype=float)
    src = np.asarray(reg["source"])
    for ax, L in zip(axes[1:], (2, 3), strict=True):
        for key, color, name in (
            ("dist_l1", "tab:purple", "weighted min L1"),
            ("dist_l2", "tab:green", "weighted min L2"),
        ):
            vals = np.asarray(reg[key], dtype=float)
            m = (L_col == L) & (src == "Corollary 5")
            ax.loglog(a_col[m], vals[m], color=color, label=f"Corollary 5: distance to {name}")
            m = (L_col == L) & (src == "gradient flow")
            ax.loglog(
                a_col[m],
                vals[m],
                "o",
                color=color,
                mfc="none",
                label=f"gradient flow: distance to {name}",
            )
        m = (L_col == L) & (src == "gradient flow")
        a_max = a_col[m].max()
        d2 = np.asarray(reg["dist_l2"], dtype=float)[m][np.argmax(a_col[m])]
        xs = np.geomspace(a_max / 4, a_max * 1.3, 5)
        ax.loglog(xs, d2 * (xs / a_max) ** (-2 * L), "k:", lw=1.5, label=f"alpha^-{2 * L}")
        if L == 3:
            a_min = a_col[m].min()
            d1 = np.asarray(reg["dist_l1"], dtype=float)[m][np.argmin(a_col[m])]
            xs = np.geomspace(a_min * 0.7, a_min * 4, 5)
            ax.loglog(xs, d1 * (xs / a_min) ** L, "k-.", lw=1.5, label=f"alpha^{L}")
        ax.set_xlabel("alpha")
        ax.set_ylabel("|beta_inf - z|")
        ax.set_title(f"Remark 4, diagonal L = {L}: small alpha -> L1, large -> L2", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"{PAPER}: Theorem 6 and Corollaries 5-7, closed-form regression limits vs "
        "gradient flow and GD",
        fontsize=11,
    )
    return [save(fig, out / "theorem6.png")]
