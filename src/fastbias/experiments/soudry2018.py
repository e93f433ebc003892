"""Soudry, Hoffer, Nacson, Gunasekar & Srebro (2018): the experiments of the paper.

Targets: ``soudry2018-fig3.1`` (GD and GD with momentum on the synthetic data set against the
exact SVM; ``fastbias demo`` runs it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..datasets import soudry2018
from ..diagnostics import fit_rates
from ..references import max_margin
from . import claims as C
from ._framework import Context, Outcome, target
from ._plotting import figure, history_columns, loglog_guide, save

PAPER = "Soudry et al. (2018)"

__all__ = ["paper_lr", "figure31"]


def paper_lr(X: np.ndarray) -> float:
    """Figure 3.1's step size ``eta = 1/sigma_max(X)``."""
    return 1.0 / float(np.linalg.norm(X, 2))


def _nearest(steps: np.ndarray, t: float) -> int:
    """Index of the recorded step nearest ``t`` on the log scale."""
    return int(np.argmin(np.abs(np.log(steps) - np.log(t))))


def _rate_claims(h, label: str, T: int, ctx: Context) -> list[C.Claim]:
    """Section 3's rates for one run, measured at the horizon.

    Loss ~ 1/t (eq. 3.4): the local exponent ``-d log L / d log t`` over the last decade
    (the law is asymptotic; a fit over earlier decades measures the transient). Angle gap
    O(1/log^2 t) (eq. 3.2) and margin gap O(1/log t) (eq. 3.3): the gap shrinks from
    ``t = T/100`` to ``T`` at least by the law's factor ``(log(T/100) / log T)^b``.
    """
    steps = np.asarray(h["step"], dtype=np.float64)
    i_end, i_dec, i_two = len(steps) - 1, _nearest(steps, T / 10), _nearest(steps, T / 100)
    log_loss = np.asarray(h["log_loss"], dtype=np.float64)
    a = -(log_loss[i_end] - log_loss[i_dec]) / np.log(steps[i_end] / steps[i_dec])
    out = [
        C.close(
            f"{label}: loss ~ 1/t (local exponent over the last decade)",
            f"{PAPER}, eq. 3.4, Figure 3.1 C",
            1.0,
            a,
            atol=ctx.pick(0.05, 0.1),
            note=f"-d log L/d log t between t = {steps[i_dec]:.3g} and {steps[i_end]:.3g}",
        )
    ]
    for column, power, eq, panel in (("angle_gap", 2, "3.2", "D"), ("margin_gap", 1, "3.3", "E")):
        values = np.asarray(h[column], dtype=np.float64)
        ratio = values[i_end] / values[i_two]
        bound = (np.log(steps[i_two]) / np.log(steps[i_end])) ** power
        out.append(
            C.at_most(
                f"{label}: {column.replace('_', ' ')} = O(1/log^{power} t) "
                f"(shrink factor from T/100 to T)",
                f"{PAPER}, eq. {eq}, Figure 3.1 {panel}",
                bound,
                ratio,
                note=f"gap(T)/gap(T/100) at t = {steps[i_end]:.3g}, {steps[i_two]:.3g}; the law "
                f"gives (log(T/100)/log T)^{power}",
            )
        )
    return out


@target(
    "soudry2018-fig3.1",
    paper=PAPER,
    title="Figure 3.1: GD and GD with momentum on synthetic data converge to the L2 max margin",
    plot=lambda outcome, out: plot_figure31(outcome, out),
    seconds_full=1.0,
    seconds_quick=0.5,
)
def figure31(ctx: Context) -> Outcome:
    """Figure 3.1: GD (and GD with momentum) on the synthetic data set, against the exact SVM.

    Settings as the paper states them: four support vectors ``(0.5, 1.5)``, ``(1.5, 0.5)``
    and their negatives, plus 12 random points off the margin (6 per class, seed 0), so
    ``w_hat = (0.5, 0.5)`` exactly; exponential loss; ``eta = 1/sigma_max(X)``; momentum
    ``gamma = 0.9`` for GDMO; initialization at the origin; ``T = 10^6`` steps (the paper's
    horizon is not stated; 10^6 puts four decades past the loss's 1/t regime; ``--quick``:
    10^5). Chosen where the paper is silent:

    - The loss is the sum over samples (eq. 2.1) for GD, as in the theorems.
    - For GDMO the paper does not say whether the step multiplies the summed or the mean loss.
      With the summed loss, heavy-ball momentum at ``eta = 1/sigma_max`` overshoots in its
      first ~20 steps to a margin of ~47, where the gradient is ~e^-47 and the direction
      stays frozen (angle gap 1.05e-2) for an astronomical number of steps; it does not show
      the figure's convergence. With the mean loss (``eta / N``, how deep-learning code
      applies a step) GDMO converges like GD, as the figure shows. The target runs both and
      reports the summed-loss one as a documented finding.
    """
    T = ctx.horizon(10**6, 10**5)
    X, y = soudry2018(seed=0)
    N = len(y)
    lr = paper_lr(X)
    svm = max_margin(X, y)
    w_hat = np.asarray(svm.coef, dtype=np.float64)
    gd = ctx.train("gd", X, y, loss="exp", steps=T, lr=lr, reference="svm")
    momentum = {"optimizer": "momentum", "optimizer_options": {"beta": 0.9}}
    gdmo = ctx.train("gdmo-mean", X, y, loss="exp", steps=T, lr=lr / N, reference="svm",
                     **momentum)  # fmt: skip
    gdmo_sum = ctx.train("gdmo-sum", X, y, loss="exp", steps=T, lr=lr, reference="svm",
                         **momentum)  # fmt: skip
    h = gd.history
    steps = np.asarray(h["step"], dtype=np.float64)
    i_half = _nearest(steps, np.sqrt(T))
    rho = np.asarray(h["residual_norm"], dtype=np.float64)
    norm = np.asarray(h["norm"], dtype=np.float64)
    span = np.log(steps[-1] / steps[i_half])
    slope = (norm[-1] - norm[i_half]) / span
    slope_tol = (rho[i_half] + rho[-1]) / span
    logT = np.log(steps[-1])
    b1_bound = rho[-1] ** 2 / (2 * float(w_hat @ w_hat) * logT**2)
    r4 = np.asarray(h["theorem4_residual_norm"], dtype=np.float64)[i_half:]

    claims = [
        C.at_most(
            "exact SVM of the data is w_hat = (0.5, 0.5)",
            f"{PAPER}, Figure 3.1 caption",
            1e-9,
            float(np.max(np.abs(w_hat - 0.5))),
            predicted="max |w_hat - 0.5| = 0",
            note=f"w_hat = {np.array2string(w_hat, precision=12)} (fastbias.max_margin)",
        ),
        *_rate_claims(h, "GD", T, ctx),
        C.at_most(
            "GD: rho(t) = w(t) - w_hat log t stays bounded",
            f"{PAPER}, Theorem 3, eq. 2.3",
            float(rho[i_half]),
            float(rho[i_half:].max()),
            predicted=f"max on [sqrt T, T] <= ||rho(sqrt T)|| = {rho[i_half]:.4g}",
            note="the largest ||rho(t)|| recorded on [sqrt(T), T]",
        ),
        C.close(
            "GD: ||w(t)|| grows like ||w_hat|| log t (slope)",
            f"{PAPER}, eq. 2.3, Figure 3.1 B",
            float(np.linalg.norm(w_hat)),
            slope,
            atol=slope_tol,
            note="secant slope of ||w|| against log t on [sqrt(T), T]; eq. 2.3 bounds its "
            "error by (||rho(sqrt T)|| + ||rho(T)||) / log sqrt(T), the tolerance",
        ),
        C.at_most(
            "GD: angle gap at T within eq. B.1's leading term",
            f"{PAPER}, App. B, eq. B.1",
            b1_bound,
            float(h["angle_gap"][-1]),
            note=f"bound ||rho(T)||^2 / (2 ||w_hat||^2 log^2 T) with ||rho(T)|| = {rho[-1]:.4g}",
        ),
        C.holds(
            "GD: Theorem 4's residual r(t) decreases to 0",
            f"{PAPER}, Theorem 4, eq. 2.7",
            "decreasing on [sqrt T, T]",
            f"{r4[0]:.4g} -> {r4[-1]:.4g}",
            bool(np.all(np.diff(r4) < 0)),
            "strictly decreasing",
            value=float(r4[-1]),
            note="r(t) = w(t) - w_hat log t - w_tilde, w_tilde from eta exp(-x_n.w_tilde) = "
            "alpha_n on the support vectors",
        ),
    ]
    claims += _rate_claims(gdmo.history, "GDMO, eta/N", T, ctx)[:2]
    frozen = _rate_claims(gdmo_sum.history, "GDMO, eta (summed loss)", T, ctx)[1]
    claims.append(
        dataclasses.replace(
            frozen,
            expected=False,
            note="heavy-ball momentum 0.9 at eta = 1/sigma_max on the summed loss overshoots to "
            "a margin of ~47 in ~20 steps; the gradient there is ~e^-47 and the direction "
            f"stays frozen (angle gap {gdmo_sum.history['angle_gap'][-1]:.3g} at every "
            "recorded t past 100). See the target's docstring.",
        )
    )

    def hist(run):
        return history_columns(run.history)

    separators = {
        "name": ["w_hat (SVM)", f"GD w(T), T={T}", f"GDMO mean w(T), T={T}"],
        "w_0": [w_hat[0], gd.coef[0], gdmo.coef[0]],
        "w_1": [w_hat[1], gd.coef[1], gdmo.coef[1]],
    }
    report = "\n".join(
        [
            f"GD on the Figure 3.1 data: exp loss, eta = 1/sigma_max(X) = {lr:.6g}, T = {T:,}",
            h.table(
                [
                    "step",
                    "log_loss",
                    "norm",
                    "angle_gap",
                    "margin_gap",
                    "residual_norm",
                    "theorem4_residual_norm",
                ],
                max_rows=15,
            ),  # fmt: skip
            "",
            f"exact L2 max-margin (SVM): w_hat = {np.array2string(w_hat, precision=6)}, "
            f"margin = {1 / np.linalg.norm(w_hat):.6g}",
            f"GD w(T) = {np.array2string(gd.coef, precision=6)}; angle gap "
            f"{h['angle_gap'][-1]:.4e}, margin gap {h['margin_gap'][-1]:.4e}",
            "",
            "fitted rates (Soudry et al. Section 3):",
            str(fit_rates(h)),
        ]
    )
    return Outcome(
        claims=claims,
        tables={
            "figure31_history": hist(gd),
            "figure31_gdmo_mean": hist(gdmo),
            "figure31_gdmo_sum": hist(gdmo_sum),
            "figure31_data": {"x_0": X[:, 0], "x_1": X[:, 1], "y": y},
            "figure31_separators": separators,
        },
        settings={
            "data": "fastbias.datasets.soudry2018(seed=0)",
            "loss": "exp",
            "lr_gd": lr,
            "lr_gdmo_mean": lr / N,
            "lr_gdmo_sum": lr,
            "momentum": 0.9,
            "init": "zeros",
            "steps": T,
            "w_hat": w_hat,
        },
        report=report,
    )


def plot_figure31(outcome: Outcome, out: Path) -> list[Path]:
    """Figure 3.1's panels A-E from the outcome's tables (draws only)."""
    t = outcome.tables
    gd, mo, mo_sum = t["figure31_history"], t["figure31_gdmo_mean"], t["figure31_gdmo_sum"]
    data, sep = t["figure31_data"], t["figure31_separators"]
    fig, axes = figure(1, 5, width=21, height=4.3)
    ax = axes[0]
    x0, x1, y = (np.asarray(data[k]) for k in ("x_0", "x_1", "y"))
    pos = y > 0
    ax.scatter(x0[pos], x1[pos], marker="+", color="tab:red", s=60, label="y = +1")
    ax.scatter(x0[~pos], x1[~pos], marker="o", facecolors="none", color="tab:blue",
               label="y = -1")  # fmt: skip
    lim = 1.1 * max(np.abs(x0).max(), np.abs(x1).max())
    xs = np.linspace(-lim, lim, 2)
    for (name, w0, w1), style in zip(zip(sep["name"], sep["w_0"], sep["w_1"], strict=True),
                                     ("k-", "b--", "g:"), strict=True):  # fmt: skip
        ax.plot(xs, -w0 / w1 * xs, style, label=name)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.set_title("A: data and separators")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)

    runs = [(gd, "GD", "tab:blue", "-"), (mo, "GDMO (eta/N)", "tab:green", "--"),
            (mo_sum, "GDMO (eta, summed loss)", "tab:gray", ":")]  # fmt: skip
    T = float(np.asarray(gd["step"])[-1])
    ax = axes[1]
    for h, label, color, ls in runs:
        norm = np.asarray(h["norm"])
        ax.semilogx(h["step"], norm / norm[-1], color=color, ls=ls, label=label)
    ax.set_title("B: ||w(t)|| / ||w(T)||")
    ax.set_ylabel("normalized norm")
    ax = axes[2]
    for h, label, color, ls in runs:
        ax.loglog(h["step"], np.exp(np.asarray(h["log_loss"])), color=color, ls=ls, label=label)
    loglog_guide(
        ax, gd["step"], np.exp(np.asarray(gd["log_loss"])), lambda s: 1 / s, "c/t (eq. 3.4)"
    )
    ax.set_title("C: training loss")
    ax.set_ylabel("L(w(t))")
    for ax, col, title, power, eq in (
        (axes[3], "angle_gap", "D: angle gap 1 - cos(w, w_hat)", 2, "3.2"),
        (axes[4], "margin_gap", "E: margin gap", 1, "3.3"),
    ):
        for h, label, color, ls in runs:
            ax.loglog(h["step"], h[col], color=color, ls=ls, label=label)
        loglog_guide(ax, gd["step"], gd[col], lambda s, p=power: np.log(s) ** -p,
                     f"c/log^{power} t (eq. {eq})", t_min=T ** 0.5)  # fmt: skip
        ax.set_title(title)
        ax.set_ylabel(col.replace("_", " "))
    for ax in axes[1:]:
        ax.set_xlabel("t (GD steps)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{PAPER}, Figure 3.1: exp loss, eta = 1/sigma_max(X), T = {T:.0e}")
    return [save(fig, out / "figure31.png")]
