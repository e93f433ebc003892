"""Vardi, Shamir & Srebro (2022): Tables 1 and 2, cell by cell.

Targets: ``vardi2022-table1`` (depth-2 networks) and ``vardi2022-table2`` (deep networks).
Every cell of the paper's tables states what can be guaranteed for the KKT point of the
parameter-space max-margin problem (Problem 2) that gradient flow converges to in direction:
a global optimum, a local optimum, or not even a local one. For each cell a construction is
run along gradient flow's path and its limit direction is judged by
:func:`fastbias.analysis.optimality` (Problem 2) or :func:`fastbias.analysis.layer_margin`
(the per-layer Problem 4), which polish the direction onto the exact KKT point it approaches
and then certify the verdict (witnesses at radii 1e-1..1e-4 of ``||theta||`` for "not
local", second-order conditions for "local", the global optimum by the paper's arguments for
"global").

Gradient flow's path, not its clock: the theorems are about gradient flow, whose direction
converges like ``1/log t`` or slower. Integrated in log-time (:func:`fastbias.flow`) it does not
get there for every cell: on the locally connected linear cell of Table 1 the KKT residual is
still 0.57 at ``log t = 1e5`` (4 minutes). GD with loss-scaled steps, ``eta_t = eta / L``,
follows the same path (``d theta / d tau = -grad L / L`` is gradient flow under the time change
``d tau = L dt``) and reaches log-losses of -1e38 in 10^5 steps; normalized steps (``eta /
||grad L||``, time change ``||grad L|| dt``) do the same for depth >= 3, where loss-scaled steps
grow like ``||theta||^(L-2)`` and diverge. A verdict is only given at an exact KKT point: when
polishing cannot reach one (KKT residual above 1e-8), the cell reads "not converged".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis import layer_margin, optimality
from ..datasets import separable_gaussian
from ..models.network import Network
from ..optim import train
from . import claims as C
from ._framework import Context, Outcome, target
from ._plotting import figure, save

PAPER = "Vardi et al. (2022)"
ONE, TWO = np.ones(1), np.ones(2)
X32 = np.array([[1.0, 0.25], [-1.0, 0.25]])  # Theorem 3.2's data, y = (1, 1)
S2 = 1 / np.sqrt(2)

__all__ = ["CELLS", "table1", "table2"]


@dataclass(frozen=True)
class Cell:
    """One cell of Table 1 or 2: the paper's verdict and a construction that shows it."""

    table: int
    row: str
    activation: str
    paper: str  # "global" | "not local" | "local, not global"
    theorem: str
    construction: str
    build: Callable[[], tuple[Network, np.ndarray, np.ndarray, np.ndarray]]
    assumption: str = ""  # "nonzero weights" | "nonzero inputs" | ""
    per_layer: bool = False

    @property
    def key(self) -> str:
        return f"T{self.table} {self.row} / {self.activation}"


def _random_case(net: Network, seed: int, init_seed: int, d: int = 3):
    X, y = separable_gaussian(12, d, margin=0.2, seed=seed)
    theta0 = np.random.default_rng(init_seed).standard_normal(net.n_total) * 0.5
    return net, X, y, theta0


def _fc_linear(widths):
    return lambda: _random_case(Network.fully_connected(3, widths, "linear"), 3, 0)


def _thm32():
    return (
        Network.fully_connected(2, [2], "relu"),
        X32,
        TWO,
        np.array([0.1, 0.9, 0.1, -0.9, 0.8, 0.5]),
    )


def _thm41(activation):
    return lambda: (Network.diagonal(2, 2, activation), np.array([[1.0, 2.0]]), ONE,
                    np.array([1.0, 0.0, 1.0, 0.0]))  # fmt: skip


def _thm42_linear_diagonal():
    return _random_case(Network.diagonal(3, 2, "linear"), 3, 1)


def _thm42_linear_local():
    return _random_case(Network.locally_connected(3, [[0, 1], [1, 2], [0, 2]], "linear"), 5, 1)


def _thm42_relu():
    W = np.array([[1, -0.1], [-0.1, 1], [0.5, -0.2], [-0.2, 0.6]])
    return Network.fully_connected(2, [4], "relu"), np.eye(2), TWO, np.r_[W.ravel(), 1, 1, 0.5, 0.6]


def _thm43():
    return (
        Network.fully_connected(2, [2], "relu"),
        X32,
        TWO,
        np.array([0.1, 0.9, -0.05, 0.6, 0.8, 0.5]),
    )


def _thm44(activation):
    return lambda: (Network.conv_disjoint_patches(4, 2, activation),
                    np.array([[4.0, S2, -4.0, S2]]), ONE, np.array([0.0, 1.0, S2, S2]))  # fmt: skip


def _thm51(activation, depth=3):
    return lambda: (Network.diagonal(2, depth, activation), np.array([[1.0, 1.0]]), ONE,
                    np.ones(2 * depth))  # fmt: skip


def _shared_linear():
    net = Network(
        [(2, [[0, 1, -1, -1], [-1, -1, 0, 1], [1, 0, -1, -1]]), (3, [[0, 1, 2]])], "linear"
    )
    X, y = separable_gaussian(8, 4, margin=0.3, seed=8)
    return net, X, y, np.random.default_rng(3).standard_normal(5)


RANDOM = "12 seeded Gaussian points, d = 3, margin 0.2; Gaussian init (scale 0.5)"
CELLS: tuple[Cell, ...] = (
    Cell(1, "fully connected", "linear", "global", "Thm. 3.1",
         f"width 4; {RANDOM}", _fc_linear([4])),
    Cell(1, "fully connected", "relu", "not local", "Thm. 3.2",
         "2 neurons, x = (+-1, 1/4), y = 1; w1 active, w2 inactive on both, v1 > 0", _thm32),
    Cell(1, "N_no-share", "linear", "not local", "Thm. 4.1",
         "diagonal, x = (1, 2); theta(0) = [(1, 0), (1, 0)]", _thm41("linear")),
    Cell(1, "N_no-share", "relu", "not local", "Thm. 3.2",
         "Theorem 3.2's fully connected network (it is in N_no-share)", _thm32),
    Cell(1, "N_no-share, nonzero weights", "linear", "global", "Thm. 4.2(1)",
         f"diagonal; {RANDOM}", _thm42_linear_diagonal, "nonzero weights"),
    Cell(1, "N_no-share, nonzero weights", "relu", "not local", "Thm. 4.2(2)",
         "4 neurons, x = e1, e2; each starts active on one input: the limit has w1.x2 = 0",
         _thm42_relu, "nonzero weights"),
    Cell(1, "N_no-share, nonzero inputs", "linear", "global", "Thm. 4.2(1)",
         "locally connected, supports {0,1}, {1,2}, {0,2}; 12 seeded Gaussian points",
         _thm42_linear_local, "nonzero inputs"),
    Cell(1, "N_no-share, nonzero inputs", "relu", "local, not global", "Thm. 4.3",
         "Theorem 3.2's data, both neurons active on both inputs", _thm43, "nonzero inputs"),
    Cell(1, "N, nonzero inputs", "linear", "not local", "Thm. 4.4",
         "conv, two disjoint patches, x = (4, 1/sqrt2, -4, 1/sqrt2)", _thm44("linear"),
         "nonzero inputs"),
    Cell(1, "N, nonzero inputs", "relu", "not local", "Thm. 4.4",
         "conv, two disjoint patches, x = (4, 1/sqrt2, -4, 1/sqrt2)", _thm44("relu"),
         "nonzero inputs"),
    Cell(2, "fully connected", "linear", "global", "Thm. 3.1",
         f"depth 3, widths (3, 2); {RANDOM}", _fc_linear([3, 2])),
    Cell(2, "fully connected", "relu", "not local", "Thm. 3.2",
         "the paper cites its depth-2 construction (Theorem 3.2)", _thm32),
    Cell(2, "N_no-share, nonzero inputs", "linear", "not local", "Thm. 5.1",
         "diagonal depth 3, x = (1, 1); theta(0) = 1", _thm51("linear"), "nonzero inputs"),
    Cell(2, "N_no-share, nonzero inputs", "relu", "not local", "Thm. 5.1",
         "diagonal depth 3, x = (1, 1); theta(0) = 1", _thm51("relu"), "nonzero inputs"),
    Cell(2, "N, per layer", "linear", "global", "Thm. 5.2",
         "shared weights (3 neurons, 2 shared parameters); 8 seeded Gaussian points, d = 4",
         _shared_linear, per_layer=True),
    Cell(2, "N, per layer", "relu", "not local", "Thm. 5.3",
         "Theorem 4.2(2)'s 4-neuron network: layer 1 is not a local optimum of eq. 4",
         _thm42_relu, per_layer=True),
    Cell(2, "N, per layer, nonzero inputs", "linear", "global", "Thm. 5.2",
         "conv, two disjoint patches, x = (4, 1/sqrt2, -4, 1/sqrt2)", _thm44("linear"),
         "nonzero inputs", per_layer=True),
    Cell(2, "N, per layer, nonzero inputs", "relu", "local, not global", "Thm. 5.4",
         "Theorem 4.3's two neurons active on both inputs", _thm43, "nonzero inputs",
         per_layer=True),
)  # fmt: skip


@dataclass
class CellResult:
    cell: Cell
    verdict: str
    assumption_holds: bool
    steps: np.ndarray  # recorded steps
    margin_ratio: np.ndarray  # normalized margin / the global optimum's (nan: unknown)
    kkt_norm2: float
    optimum_norm2: float
    polish_distance: float
    detail: str


def _assumption_holds(cell: Cell, net: Network, theta: np.ndarray, X: np.ndarray) -> bool:
    if cell.assumption == "nonzero weights":
        return all(float(np.min(n)) > 1e-6 for n in net.neuron_norms(theta))
    if cell.assumption == "nonzero inputs":
        return all(float(np.min(np.abs(p))) > 1e-6 for p in net.preactivations(theta, X))
    return True


def _direction_params(run):
    """The run's final parameters, scaled when the run carries a power-of-two scale."""
    return run.scaled_params if run.scaled_params is not None else run.params


def _path_run(net: Network, X, y, theta0, steps: int):
    """Gradient flow's path, followed by GD with steps scaled to it (see the module doc)."""
    rule, lr = ("loss-scaled", 1e-3) if net.depth == 2 else ("normalized", 1e-2)
    return train(X, y, model=net, init=net.unflatten(theta0, X.shape[1]), step_rule=rule, lr=lr,
                 steps=steps, reference=None)  # fmt: skip


def _run_cell(cell: Cell, steps: int) -> CellResult:
    net, X, y, theta0 = cell.build()
    run = _path_run(net, X, y, theta0, steps)
    theta = net.flatten(_direction_params(run))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the polishing distance is reported in the CSV
        res = optimality(net, theta, X, y)
        layers = (
            [layer_margin(net, theta, X, y, k) for k in range(1, net.depth + 1)]
            if cell.per_layer
            else []
        )
    kkt_norm2 = res.norm**2
    opt2 = res.certificate.value if res.certificate is not None else np.nan
    if cell.per_layer:
        verdicts = [r.verdict for r in layers]
        not_global = any(np.isfinite(r.optimum_norm) and r.optimum_norm < r.norm * (1 - 1e-6)
                         for r in layers)  # fmt: skip
        if "not local" in verdicts:
            verdict = "not local"
        elif all(v == "global" for v in verdicts):
            verdict = "global"
        else:
            verdict = "local, not global" if not_global else "local"
        detail = "per layer: " + ", ".join(verdicts)
    else:
        verdict = res.verdict
    if res.kkt.residual > 1e-8:  # polishing did not reach a KKT point: the run is not there yet
        verdict = f"not converged (KKT residual {res.kkt.residual:.2g})"
    elif not cell.per_layer:
        if verdict == "local" and np.isfinite(opt2) and opt2 < kkt_norm2 * (1 - 1e-6):
            verdict = "local, not global"
        detail = res.message
    L = net.depth
    gamma = np.asarray(run.history["normalized_margin_theta"], dtype=np.float64)
    gamma_opt = opt2 ** (-L / 2) if np.isfinite(opt2) else np.nan
    return CellResult(
        cell,
        verdict,
        _assumption_holds(cell, net, res.theta, X),
        np.asarray(run.history["step"], dtype=np.float64),
        gamma / gamma_opt,
        float(kkt_norm2),
        float(opt2),
        float(res.polish_distance),
        detail,
    )


def _remark31(delta: float) -> tuple[float, float]:
    """Remark 3.1 at ``x = (+-1, delta)``: (measured suboptimality ||theta~||/||theta*||, the
    closed form sqrt(sqrt(1 + delta^2) / (2 delta)))."""
    net = Network.fully_connected(2, [2], "relu")
    X = np.array([[1.0, delta], [-1.0, delta]])
    theta0 = np.array([0.2 * delta, 0.9, 0.1 * delta, -0.9, 0.8, 0.5])
    run = _path_run(net, X, TWO, theta0, 30000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimality(net, net.flatten(_direction_params(run)), X, TWO)
    return float(res.suboptimality), float(np.sqrt(np.sqrt(1 + delta**2) / (2 * delta)))


def _table_outcome(ctx: Context, table: int) -> Outcome:
    steps = ctx.horizon(10**5, 3 * 10**4)
    cells = [c for c in CELLS if c.table == table]
    results = ctx.map(lambda c: _run_cell(c, steps), cells)
    claims = []
    for r in results:
        measured = r.verdict if r.assumption_holds else f"{r.verdict} (assumption fails)"
        claims.append(
            C.equal(
                f"{r.cell.row}, {r.cell.activation}: {r.cell.paper} ({r.cell.theorem})",
                f"{PAPER}, Table {table}, {r.cell.theorem}",
                r.cell.paper,
                measured,
                note=f"{r.cell.construction}; {steps} path steps; ||theta~||^2 = "
                f"{r.kkt_norm2:.6g}, global optimum {r.optimum_norm2:.6g}; {r.detail}",
            )
        )
    tables = {
        f"table{table}_cells": {
            "row": [r.cell.row for r in results],
            "activation": [r.cell.activation for r in results],
            "theorem": [r.cell.theorem for r in results],
            "paper_verdict": [r.cell.paper for r in results],
            "fastbias_verdict": [r.verdict for r in results],
            "assumption": [r.cell.assumption or "-" for r in results],
            "assumption_holds": [r.assumption_holds for r in results],
            "kkt_norm_squared": [r.kkt_norm2 for r in results],
            "global_optimum_norm_squared": [
                r.optimum_norm2 if np.isfinite(r.optimum_norm2) else "" for r in results
            ],
            "polish_distance": [r.polish_distance for r in results],
            "construction": [r.cell.construction for r in results],
        },
        f"table{table}_margins": {
            "cell": [r.cell.key for r in results for _ in r.steps],
            "t": [t for r in results for t in r.steps],
            "margin_over_optimum": [
                m if np.isfinite(m) else "" for r in results for m in r.margin_ratio
            ],
        },
    }
    settings = {
        "dynamics": "gradient flow's path: loss-scaled GD (lr 1e-3) for depth 2, normalized GD "
        "(lr 1e-2) for depth >= 3; exp loss",
        "steps": steps,
        "verdicts": "fastbias.analysis.optimality / layer_margin",
    }
    if table == 1:
        deltas = ctx.pick([1 / 4, 1 / 16, 1 / 64, 1 / 256], [1 / 4, 1 / 16])
        sub = [_remark31(dlt) for dlt in deltas]
        claims.append(
            C.at_most(
                "Remark 3.1: sub-optimality = sqrt(sqrt(1+d^2)/(2d))",
                f"{PAPER}, Remark 3.1",
                1e-6,
                max(abs(m / p - 1) for m, p in sub),
                predicted="closed form (relative error 0)",
                note="largest relative error over delta in "
                + ", ".join(f"1/{round(1 / d)}" for d in deltas),
            )
        )
        claims.append(
            C.holds(
                "Remark 3.1: sub-optimality unbounded as delta -> 0",
                f"{PAPER}, Remark 3.1",
                "increasing as delta decreases",
                " < ".join(f"{m:.3g}" for m, _ in sub),
                bool(np.all(np.diff([m for m, _ in sub]) > 0)),
                "strictly increasing",
                value=sub[-1][0],
            )
        )
        tables["remark31_suboptimality"] = {
            "delta": deltas,
            "measured": [m for m, _ in sub],
            "closed_form": [p for _, p in sub],
        }
    return Outcome(claims=claims, tables=tables, settings=settings)


def _plot_table(outcome: Outcome, out: Path, table: int) -> list[Path]:
    cells = outcome.tables[f"table{table}_cells"]
    margins = outcome.tables[f"table{table}_margins"]
    rows = list(dict.fromkeys(cells["row"]))
    remark = outcome.tables.get("remark31_suboptimality")
    ncols = 3 if remark else 2
    fig, axes = figure(1, ncols, width=7.5 + 5.5 * (ncols - 1), height=0.75 * len(rows) + 2.6)
    ax = axes[0]
    colors = {True: "#d9f2d9", False: "#f8d0d0"}
    for i, row in enumerate(rows):
        for j, act in enumerate(("linear", "relu")):
            k = next(
                n
                for n, (r, a) in enumerate(zip(cells["row"], cells["activation"], strict=True))
                if r == row and a == act
            )
            ours, paper = cells["fastbias_verdict"][k], cells["paper_verdict"][k]
            ok = ours == paper and cells["assumption_holds"][k]
            ax.add_patch(
                __import__("matplotlib.patches").patches.Rectangle(
                    (j, len(rows) - 1 - i), 1, 1, facecolor=colors[bool(ok)], edgecolor="k"
                )
            )
            ax.text(j + 0.5, len(rows) - 0.5 - i,
                    f"paper: {paper} ({cells['theorem'][k]})\nfastbias: {ours}",
                    ha="center", va="center", fontsize=8)  # fmt: skip
    ax.set_xlim(0, 2)
    ax.set_ylim(0, len(rows))
    ax.set_xticks([0.5, 1.5], ["linear", "ReLU"])
    ax.set_yticks([len(rows) - 0.5 - i for i in range(len(rows))], rows, fontsize=8)
    ax.tick_params(length=0)
    ax.set_title(f"Table {table}: KKT point of gradient flow (green: as the paper says)")

    ax = axes[1]
    keys = list(dict.fromkeys(margins["cell"]))
    for key in keys:
        sel = [
            i
            for i, c in enumerate(margins["cell"])
            if c == key and margins["margin_over_optimum"][i] != ""
        ]
        if not sel:
            continue
        t = np.array([margins["t"][i] for i in sel])
        m = np.array([margins["margin_over_optimum"][i] for i in sel], dtype=np.float64)
        keep = t > 0
        ax.semilogx(t[keep], m[keep], label=key.split(" ", 1)[1], lw=1.2)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="global optimum")
    ax.set_xlabel("steps along gradient flow's path (loss-scaled / normalized GD)")
    ax.set_ylabel("normalized margin / optimal")
    ax.set_title("margin min y Phi / ||theta||^L relative to Problem 2's optimum")
    ax.set_ylim(0, 1.08)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    if remark:
        ax = axes[2]
        d = np.asarray(remark["delta"], dtype=np.float64)
        ax.loglog(
            1 / d, remark["measured"], "o", label="measured (gradient-flow path + optimality)"
        )
        dd = np.geomspace(d.min(), d.max(), 50)
        ax.loglog(1 / dd, np.sqrt(np.sqrt(1 + dd**2) / (2 * dd)), "k--",
                  label="sqrt(sqrt(1+d^2)/(2d))")  # fmt: skip
        ax.set_xlabel("1 / delta  (x = (+-1, delta))")
        ax.set_ylabel("||theta~|| / ||theta*||")
        ax.set_title("Remark 3.1: unbounded sub-optimality")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{PAPER}, Table {table}: " + ("depth-2 networks" if table == 1 else "deep networks")
    )
    return [save(fig, out / f"table{table}.png")]


@target(
    "vardi2022-table1",
    paper=PAPER,
    title="Table 1: is the KKT point of gradient flow a global/local optimum? (depth 2)",
    plot=lambda outcome, out: _plot_table(outcome, out, 1),
    seconds_full=3.5,
    seconds_quick=3.7,
)
def table1(ctx: Context) -> Outcome:
    """Table 1 (depth-2 networks), every cell, plus Remark 3.1.

    For each cell (fully connected / N_no-share / with the row's assumption / N with shared
    weights; linear / ReLU) a construction of the cited theorem, run along gradient flow's path
    with the exponential loss (10^5 steps, ``--quick`` 3*10^4; see the module docstring for why
    the path is followed by loss-scaled / normalized steps), and the verdict of
    :func:`fastbias.analysis.optimality` on its limit direction against the paper's.
    The paper states its negative results by construction; where the construction is given in
    the main text it is used as stated (Theorems 3.2, 4.1, 4.4); Theorems 4.2(2) and 4.3 are
    stated without one in the main text (the appendix is not in our copy), so the
    constructions of ``tests/test_analysis.py`` are used: a 4-neuron ReLU network whose limit
    has a neuron at a kink (4.2(2)) and Theorem 3.2's data with both neurons active (4.3).
    Positive cells ("global") are guarantees for every data set; they are shown on seeded
    random instances. A row's assumption (nonzero weight vectors / nonzero inputs to every
    neuron) is checked at the limit: a cell whose construction violates it fails.
    Remark 3.1: at ``x = (+-1, delta)`` the KKT point's norm over the optimum's grows like
    ``sqrt(sqrt(1 + delta^2) / (2 delta))`` as ``delta -> 0``.
    """
    return _table_outcome(ctx, 1)


@target(
    "vardi2022-table2",
    paper=PAPER,
    title="Table 2: the KKT point of gradient flow in deep networks, and per layer",
    plot=lambda outcome, out: _plot_table(outcome, out, 2),
    seconds_full=3.0,
    seconds_quick=2.2,
)
def table2(ctx: Context) -> Outcome:
    """Table 2 (deep networks), every cell.

    As ``vardi2022-table1``: gradient flow's path (10^5 steps, quick 3*10^4), then the verdict of
    :func:`fastbias.analysis.optimality` for Problem 2 (rows 1-2) and of
    :func:`fastbias.analysis.layer_margin` for every layer (rows 3-4, the per-layer Problem
    4: "global" when every layer is a global optimum of eq. 4, "not local" when one is not a
    local optimum, "local, not global" when all are local and one has a cheaper optimum).
    The paper's ReLU entries of rows 1 and 3 cite depth-2 theorems (3.2, 5.3); those
    constructions are used. Theorem 5.4's "not global" uses Theorem 4.3's two neurons (the
    appendix is not in our copy).
    """
    return _table_outcome(ctx, 2)
