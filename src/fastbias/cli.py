"""Command line: ``fastbias demo`` (the main job), ``fastbias reproduce TARGET``,
``fastbias run DATA`` and ``fastbias run --resume CHECKPOINT``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .exceptions import FastbiasError


def _steps(text: str) -> int:
    value = float(text)
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"steps must be a whole number >= 1; got {text}")
    return int(value)


def _model_help() -> str:
    """The model names ``--model`` takes: every name syntax of the model registry."""
    from .models.registry import MODELS

    names = [e.syntax for e in MODELS if e.syntax]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _final_report(run) -> str:
    h = run.history
    try:
        what = f"w = {np.array2string(np.asarray(run.coef, dtype=float), precision=6)}"
    except OverflowError:  # past float64: the direction and the log of the norm
        what = (
            f"w = exp({run.log_coef_norm:.10g}) * "
            f"{np.array2string(np.asarray(run.direction, dtype=float), precision=6)}"
        )
    lines = [f"final iterate after {run.steps_done:,} steps: {what}"]
    if run.reference is not None and "angle_gap" in h:
        ref = np.asarray(getattr(run.reference, "coef", run.reference), dtype=float)
        lines.append(
            f"exact L2 max-margin (SVM): w_hat = {np.array2string(ref, precision=6)}, "
            f"margin = {1 / np.linalg.norm(ref):.6g}"
        )
        lines.append(f"  angle gap 1 - cos(w, w_hat)       = {h['angle_gap'][-1]:.4e}")
        lines.append(f"  direction distance                = {h['direction_distance'][-1]:.4e}")
        lines.append(f"  margin gap (eq. 3.3)              = {h['margin_gap'][-1]:.4e}")
        if "residual_norm" in h:
            lines.append(f"  ||w(t) - w_hat log t||            = {h['residual_norm'][-1]:.4e}")
        if "theorem4_residual_norm" in h:
            lines.append(
                f"  ||w(t) - w_hat log t - w_tilde||  = {h['theorem4_residual_norm'][-1]:.4e}"
            )
    if "log_loss" in h:
        lines.append(f"  log-loss                          = {h['log_loss'][-1]:.6g}")
    else:  # -log L overflows float64: log(-log L) = log min margin
        lines.append(f"  log(-log-loss)                    = {h['log_min_margin'][-1]:.6g}")
    return "\n".join(lines)


def _print_run(run, out: Path, elapsed: float) -> None:
    print(run.history.table())
    print()
    print(_final_report(run))
    print()
    try:
        print("fitted rates (Soudry et al. Section 3):")
        print(run.rates())
    except ValueError as exc:
        print(f"rates not fitted: {exc}")
    print()
    per_step = run.elapsed / max(run.steps_done, 1) * 1e9
    print(
        f"{run.steps_done:,} steps in {run.elapsed:.3f} s of training ({per_step:.1f} ns/step); "
        f"{elapsed:.2f} s in all"
    )


def _print_report(report) -> None:
    if report.outcome.report:
        print(report.outcome.report)
        print()
    ok, n = report.counts
    print(f"{report.paper}: {report.title}")
    print(report.table())
    print()
    documented = [c for c in report.claims if not c.expected]
    for c in documented:
        print(f"documented finding: {c.claim}: {c.note}")
    print(
        f"{ok}/{n} claims hold{' (reduced --quick settings)' if report.quick else ''}; "
        f"{report.elapsed:.1f} s; wrote {', '.join(f.name for f in report.files)} in "
        f"{report.out}"
    )


def _reproduce(args) -> int:
    from . import experiments

    if args.list:
        print(f"{'target':<22} {'full':>8} {'quick':>8}  experiment")
        for t in experiments.list_targets():
            times = f"{t.seconds_full:>7.0f}s {t.seconds_quick:>7.1f}s"
            print(f"{t.name:<22} {times}  {t.paper}: {t.title}")
        total = sum(t.seconds_full for t in experiments.list_targets())
        print(f"{'all':<22} {total:>7.0f}s  (measured on a 2-core machine)")
        return 0
    if args.target is None:
        raise ValueError("name a target (see fastbias reproduce --list) or 'all'")
    common = {"quick": args.quick, "steps": args.steps, "jobs": args.jobs,
              "progress": not args.no_progress}  # fmt: skip
    try:
        if args.target == "all":
            out = args.out or "fastbias-out"
            reports, index = experiments.reproduce_all(out=out, **common)
            for rep in reports:
                ok, n = rep.counts
                print(f"{rep.target:<22} {ok:>3}/{n:<3} claims hold  {rep.elapsed:7.1f} s")
            print(f"wrote {', '.join(str(p) for p in index)}")
            failed = len(reports) < len(experiments.TARGETS)
            return 1 if failed or not all(r.passed for r in reports) else 0
        out = args.out or f"fastbias-out/{args.target}"
        report = experiments.reproduce(args.target, out=out, **common)
    except experiments.TargetInterrupted as exc:
        print(f"fastbias: {exc}", file=sys.stderr)
        return 130
    _print_report(report)
    return 0 if report.passed else 1


def _kernels_cached() -> bool:
    """Whether numba's on-disk cache holds the kernels the demo runs (best effort: True when
    that cannot be told, so that the notice is never wrong by default)."""
    try:
        return all(Path(f._cache._cache_file._index_path).exists() for f in _demo_kernels())
    except Exception:  # numba's cache internals are private: no notice if they moved
        return True


def _demo_kernels() -> tuple:
    """The numba kernels the demo compiles: momentum on the linear model, the history."""
    from .kernels._numba_history import history_rows
    from .kernels._numba_optim import opt_linear

    return opt_linear, history_rows


def _demo(args) -> int:
    from . import experiments

    print(
        f"fastbias demo (= fastbias reproduce soudry2018-fig3.1): GD on the Soudry et al. "
        f"(2018) Figure 3.1 data, exp loss, {args.steps:,} steps, lr = 1/sigma_max(X)"
    )
    if not _kernels_cached():
        print(
            "first run on this install: numba compiles the momentum and history kernels "
            "(up to a minute; cached on disk, later runs start at once)"
        )
    try:
        report = experiments.reproduce(
            "soudry2018-fig3.1", out=args.out, steps=args.steps,
            progress=not args.no_progress,
        )  # fmt: skip
    except experiments.TargetInterrupted as exc:
        print(f"fastbias: {exc}", file=sys.stderr)
        return 130
    _print_report(report)
    return 0


def _load_data(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as data:
            if "X" not in data:
                raise ValueError(f"{path} has no array named 'X' (found {', '.join(data.files)})")
            return data["X"], data["y"] if "y" in data else None
    if path.suffix == ".csv":
        with path.open() as fh:
            first = fh.readline()
        try:
            [float(v) for v in first.strip().split(",")]
            skip = 0
        except ValueError:
            skip = 1
        try:
            table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc} (the data must be numbers, label last)") from None
        if table.shape[1] < 2:
            raise ValueError(f"{path} needs at least two columns: features, then the label")
        return table[:, :-1], table[:, -1]
    raise ValueError(
        f"unsupported data file {path.name}: use .npz (arrays X, y) or .csv (label last)"
    )


def _run(args) -> int:
    from .optim import resume, train

    out = Path(args.out)
    t0 = time.perf_counter()
    if args.resume:
        if args.data is not None:
            raise ValueError("pass either a data file or --resume CHECKPOINT, not both")
        out.mkdir(parents=True, exist_ok=True)
        run = resume(
            args.resume,
            steps=args.steps,
            progress=not args.no_progress,
            checkpoint_every=args.checkpoint_every,
        )
    else:
        if args.data is None:
            raise ValueError("a data file (.npz or .csv) or --resume CHECKPOINT is required")
        X, y = _load_data(Path(args.data))
        out.mkdir(parents=True, exist_ok=True)
        run = train(
            X,
            y,
            model=args.model,
            loss=args.loss,
            steps=args.steps if args.steps is not None else 10**5,
            lr=args.lr,
            precision=args.precision,
            step_rule=args.step_rule,
            progress=not args.no_progress,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
        )
    _print_run(run, out, time.perf_counter() - t0)
    if run.status == "interrupted":
        where = args.resume or args.checkpoint
        hint = f"; continue with: fastbias run --resume {where}" if where else ""
        print(f"interrupted after {run.steps_done:,} steps{hint}")
    csv = run.history.to_csv(out / "history.csv")
    summary = {
        "status": run.status,
        "steps_done": run.steps_done,
        "direction": np.asarray(run.direction, dtype=float).tolist(),
        "log_coef_norm": run.log_coef_norm,
        **{k: v for k, v in run.settings.items() if k != "init"},
    }
    try:
        summary["coef"] = np.asarray(run.coef, dtype=float).tolist()
    except OverflowError:
        pass  # past float64: direction and log_coef_norm above
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {csv} and {out / 'summary.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastbias", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="GD on the Figure 3.1 data vs the exact SVM (= reproduce soudry2018-fig3.1)",
    )
    demo.add_argument("--steps", type=_steps, default=10**6)
    demo.add_argument("--out", default="fastbias-out", help="output folder (default fastbias-out)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    rep = sub.add_parser(
        "reproduce",
        help="run a paper's experiment end to end: figure, CSV and verdict of each claim",
    )
    rep.add_argument("target", nargs="?", help="a target of --list, or 'all'")
    rep.add_argument("--list", action="store_true", help="list the targets and their run times")
    rep.add_argument("--quick", action="store_true", help="reduced settings (what the tests run)")
    rep.add_argument("--out", default=None, help="output folder (default fastbias-out/TARGET)")
    rep.add_argument("--steps", type=_steps, default=None, help="override the main horizon")
    rep.add_argument("--jobs", type=_steps, default=1, help="threads for independent runs")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.set_defaults(func=_reproduce)

    run = sub.add_parser("run", help="train on a data file (.npz with X, y or .csv, label last)")
    run.add_argument("data", nargs="?", help="data file (omit with --resume)")
    run.add_argument("--model", default="linear", help=_model_help())
    run.add_argument("--loss", choices=["exp", "logistic", "squared"], default="exp")
    run.add_argument(
        "--steps", type=_steps, default=None, help="steps (default 1e5; with --resume: more steps)"
    )
    run.add_argument("--lr", type=float, default=None, help="step size (default 1/sigma_max(Z)^2)")
    run.add_argument("--precision", choices=["float64", "extended"], default="float64")
    run.add_argument(
        "--step-rule",
        choices=["fixed", "normalized", "loss-scaled", "loss-scaled-backtracking"],
        default="fixed",
    )
    run.add_argument("--checkpoint", default=None, help="save the run state to this file")
    run.add_argument(
        "--checkpoint-every", type=float, default=10.0, help="seconds between checkpoints"
    )
    run.add_argument("--resume", default=None, help="continue the run saved in this checkpoint")
    run.add_argument("--out", default="fastbias-out")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FastbiasError, ValueError, FileNotFoundError) as exc:
        print(f"fastbias: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastbias: interrupted", file=sys.stderr)
        return 130
