"""The machinery every reproduce target shares: registry, run context, outputs, verdicts.

A target is a function ``compute(ctx) -> Outcome`` registered with :func:`target`, plus a
``plot(outcome, out_dir) -> list[Path]`` that only draws what ``outcome.tables`` holds (the
same columns the CSVs get), so a figure never shows a number that is not in a CSV.
:func:`run_target` calls both and writes, into the output folder:

- ``<table>.csv`` for every table of the outcome (everything plotted);
- the PNG figures the plot function writes;
- ``verdict.json``: each claim with the value theory predicts, the value measured, the
  tolerance and pass/fail, plus the settings and the time taken.

Long runs go through :meth:`Context.train`, which checkpoints each run under
``<out>/checkpoints`` and resumes it when the same command is run again, so Ctrl-C loses no
finished work.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .claims import Claim

__all__ = [
    "Context",
    "Outcome",
    "Target",
    "Report",
    "TargetInterrupted",
    "target",
    "TARGETS",
    "run_target",
]


class TargetInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a target; its finished runs are in the checkpoint folder."""

    def __init__(self, target: str, checkpoints: Path):
        super().__init__(
            f"{target} interrupted; finished work is checkpointed in {checkpoints}. "
            "Run the same command again to resume."
        )
        self.target = target
        self.checkpoints = checkpoints


@dataclass
class Outcome:
    """What a target's ``compute`` returns.

    Attributes
    ----------
    claims : list of Claim
        The paper's claims checked against the measurements.
    tables : dict of str -> dict of str -> sequence
        Named tables of equal-length columns: everything the figure plots (one CSV each).
    settings : dict
        What was run (data, model, loss, step size, horizon, ...), for ``verdict.json``.
    report : str
        Free text printed before the verdict table (run summaries, fitted rates).
    """

    claims: list[Claim]
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    report: str = ""


@dataclass(frozen=True)
class Target:
    """A registered experiment: a paper's figure, table or theorem, end to end."""

    name: str
    paper: str
    title: str
    compute: Callable[[Context], Outcome]
    plot: Callable[[Outcome, Path], list[Path]]
    seconds_full: float
    seconds_quick: float
    doc: str = ""

    @property
    def summary(self) -> str:
        """The first paragraph of the target's docstring."""
        return self.doc.strip().split("\n\n")[0].replace("\n", " ") if self.doc else self.title


TARGETS: dict[str, Target] = {}


def target(
    name: str,
    *,
    paper: str,
    title: str,
    plot: Callable[[Outcome, Path], list[Path]],
    seconds_full: float,
    seconds_quick: float,
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register ``compute`` as the target ``name``.

    ``seconds_full`` / ``seconds_quick``: the wall time measured on the project's 2-core
    machine (what ``fastbias reproduce --list`` shows).
    """

    def register(compute: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if name in TARGETS:
            raise RuntimeError(f"reproduce target {name!r} is registered twice")
        TARGETS[name] = Target(
            name, paper, title, compute, plot, seconds_full, seconds_quick, compute.__doc__ or ""
        )
        return compute

    return register


def _key_digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode())
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()[:16]


@dataclass
class Context:
    """How a target is being run, and the helpers it runs through.

    Attributes
    ----------
    name : str
        The target's name.
    out : Path
        Its output folder.
    quick : bool
        The reduced form (fewer steps, same claims, looser tolerances) the test suite runs.
    steps : int or None
        ``--steps``: overrides the horizon of the target's main runs.
    jobs : int
        Threads for independent runs (:meth:`map`); the kernels release the GIL.
    progress : bool
        Show progress bars for long runs.
    resume : bool
        Resume runs from their checkpoints in ``out/checkpoints`` (default True).
    """

    name: str
    out: Path
    quick: bool = False
    steps: int | None = None
    jobs: int = 1
    progress: bool = True
    resume: bool = True

    def horizon(self, full: int, quick: int) -> int:
        """The number of steps of the main runs: ``--steps`` if given, else full or quick."""
        if self.steps is not None:
            return int(self.steps)
        return int(quick if self.quick else full)

    def pick(self, full: Any, quick: Any) -> Any:
        """``quick`` in the reduced form, ``full`` otherwise (tolerances, sizes, grids)."""
        return quick if self.quick else full

    @property
    def checkpoints(self) -> Path:
        return self.out / "checkpoints"

    def checkpointed(
        self,
        key: str,
        digest: str,
        start: Callable[[Path], Any],
        resume: Callable[[Path], Any],
    ):
        """A long run checkpointed at ``out/checkpoints/<key>-<digest>.ckpt``.

        ``resume(path)`` continues it when that file exists (an unreadable file is removed
        and the run starts over); otherwise ``start(path)`` runs it with checkpoints written
        there. A result whose ``status`` is ``"interrupted"`` (Ctrl-C; the checkpoint is
        written) raises :class:`TargetInterrupted`.
        """
        import fastbias as fb

        self.checkpoints.mkdir(parents=True, exist_ok=True)
        path = self.checkpoints / f"{key}-{digest}.ckpt"
        run = None
        if self.resume and path.exists():
            try:
                run = resume(path)
            except (ValueError, OSError, fb.FastbiasError):
                path.unlink(missing_ok=True)  # unreadable or from another version: start over
                run = None
        if run is None:
            run = start(path)
        if getattr(run, "status", None) == "interrupted":
            raise TargetInterrupted(self.name, self.checkpoints)
        return run

    def train(self, key: str, X, y=None, **kwargs: Any):
        """:func:`fastbias.train`, checkpointed under ``out/checkpoints`` and resumed from there.

        ``key`` names the run (unique within the target); the checkpoint file also carries a
        digest of the data and arguments, so a changed setting starts a fresh run. A run
        stopped by Ctrl-C raises :class:`TargetInterrupted` after its checkpoint is written.
        """
        import fastbias as fb

        X = np.asarray(X)
        y_arr = None if y is None else np.asarray(y)
        return self.checkpointed(
            key,
            _key_digest(X, y_arr, sorted(kwargs.items())),
            start=lambda path: fb.train(
                X, y, checkpoint=path, checkpoint_every=30.0, progress=self.progress, **kwargs
            ),  # fmt: skip
            resume=lambda path: fb.resume(path, progress=self.progress),
        )

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``[fn(item) for item in items]`` on ``jobs`` threads (order kept)."""
        items = list(items)
        if self.jobs <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(items))) as pool:
            return list(pool.map(fn, items))


@dataclass
class Report:
    """The result of reproducing one target: verdicts, files and time."""

    target: str
    paper: str
    title: str
    claims: list[Claim]
    files: list[Path]
    out: Path
    elapsed: float
    quick: bool
    outcome: Outcome

    @property
    def passed(self) -> bool:
        """Every claim holds (documented findings aside)."""
        return all(c.as_expected for c in self.claims)

    @property
    def counts(self) -> tuple[int, int]:
        """(claims that hold, claims in all)."""
        return int(sum(bool(c.passed) for c in self.claims)), len(self.claims)

    def table(self) -> str:
        """The verdict table: claim, theory, measured, tolerance, verdict."""
        return verdict_table(self.claims)

    def __repr__(self) -> str:
        ok, n = self.counts
        return (
            f"Report(target={self.target!r}, claims_passed={ok}/{n}, "
            f"elapsed={self.elapsed:.1f}s, out={str(self.out)!r})"
        )


def verdict_table(claims: Sequence[Claim], width: int = 110) -> str:
    """A fixed-width text table of claims: claim (wrapped), theory, measured, tolerance,
    verdict."""
    import textwrap

    cols = ["claim", "theory", "measured", "tolerance", "verdict"]
    rows = [[c.claim, c.predicted, c.measured, c.tolerance, c.verdict] for c in claims]
    caps = [None, 22, 14, 26, 26]
    sizes = [len(h) for h in cols]
    for r in rows:
        for i, v in enumerate(r):
            sizes[i] = max(sizes[i], min(len(v), caps[i] or len(v)))
    sizes[0] = max(24, min(sizes[0], width - sum(sizes[1:]) - 2 * (len(cols) - 1)))
    line = "  ".join(h.ljust(s) for h, s in zip(cols, sizes, strict=True))
    out = [line, "-" * len(line)]
    for r in rows:
        wrapped = [textwrap.wrap(v, s) or [""] for v, s in zip(r, sizes, strict=True)]
        for k in range(max(len(w) for w in wrapped)):
            cells = [w[k] if k < len(w) else "" for w in wrapped]
            out.append("  ".join(v.ljust(s) for v, s in zip(cells, sizes, strict=True)).rstrip())
    return "\n".join(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return repr(value)


def write_table(path: Path, columns: dict[str, Any]) -> Path:
    """One CSV of equal-length columns (numbers with full precision, text as is)."""
    names = list(columns)
    cols = [np.asarray(columns[n]) if not isinstance(columns[n], list) else columns[n]
            for n in names]  # fmt: skip
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        raise ValueError(f"table {path.name}: columns of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return repr(float(v))
        if isinstance(v, (np.integer,)):
            return str(int(v))
        return str(v)

    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for i in range(n):
            writer.writerow([cell(c[i]) for c in cols])
    return path


def run_target(
    name: str,
    *,
    out: str | os.PathLike | None = None,
    quick: bool = False,
    steps: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    resume: bool = True,
) -> Report:
    """Run one target, write its CSVs, figures and ``verdict.json`` into ``out``."""
    if name not in TARGETS:
        known = ", ".join(sorted(TARGETS))
        raise ValueError(f"Unknown reproduce target {name!r}; expected one of: {known}.")
    if steps is not None and (int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a whole number >= 1; got {steps}.")
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1; got {jobs}.")
    tgt = TARGETS[name]
    out_dir = Path(out) if out is not None else Path("fastbias-out") / name
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(name, out_dir, quick, None if steps is None else int(steps), int(jobs),
                  progress, resume)  # fmt: skip
    start = time.perf_counter()
    outcome = tgt.compute(ctx)
    files = [write_table(out_dir / f"{t}.csv", cols) for t, cols in outcome.tables.items()]
    files += list(tgt.plot(outcome, out_dir))
    elapsed = time.perf_counter() - start
    report = Report(
        name, tgt.paper, tgt.title, outcome.claims, files, out_dir, elapsed, quick, outcome
    )
    verdict = {
        "target": name,
        "paper": tgt.paper,
        "title": tgt.title,
        "quick": quick,
        "steps_override": ctx.steps,
        "passed": report.passed,
        "claims_passed": report.counts[0],
        "claims_total": report.counts[1],
        "elapsed_seconds": round(elapsed, 3),
        "settings": _json_safe(outcome.settings),
        "claims": [_json_safe(c.to_dict()) for c in outcome.claims],
        "files": [f.name for f in files],
    }
    path = out_dir / "verdict.json"
    path.write_text(json.dumps(_json_safe(verdict), indent=2, allow_nan=False) + "\n")
    report.files.append(path)
    return report
