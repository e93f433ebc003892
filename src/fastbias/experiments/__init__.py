"""Every experiment of the four papers, end to end: ``fastbias reproduce <target>``.

Each target runs a paper's experiment with the paper's settings (where the paper is silent,
the target's docstring says what was chosen and why), writes a PNG figure, a CSV of
everything plotted and ``verdict.json`` (each claim of the paper: the value theory predicts,
the value measured, the tolerance, pass/fail), and returns a :class:`Report`.

>>> from fastbias.experiments import reproduce, list_targets
>>> report = reproduce("soudry2018-fig3.1", quick=True, out="out")   # doctest: +SKIP
>>> print(report.table())                                             # doctest: +SKIP

``quick=True`` is the reduced form the test suite runs (fewer steps, the same claims with
looser tolerances). :func:`reproduce_all` runs every target and writes an index page.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import gunasekar2018, soudry2018, soudry2018_table1, vardi2022, yun2021  # noqa: F401
from ._framework import TARGETS, Context, Outcome, Report, Target, TargetInterrupted, run_target
from ._index import write_index
from .claims import Claim

__all__ = [
    "reproduce",
    "reproduce_all",
    "list_targets",
    "TARGETS",
    "Claim",
    "Context",
    "Outcome",
    "Report",
    "Target",
    "TargetInterrupted",
]


def list_targets() -> list[Target]:
    """Every registered target, in paper order."""
    return [TARGETS[name] for name in sorted(TARGETS)]


def reproduce(
    target: str,
    *,
    quick: bool = False,
    out: str | os.PathLike | None = None,
    steps: int | None = None,
    jobs: int = 1,
    progress: bool = False,
    resume: bool = True,
) -> Report:
    """Reproduce one experiment of the papers and check its claims.

    Parameters
    ----------
    target : str
        A name from :func:`list_targets` (e.g. ``"soudry2018-fig3.1"``).
    quick : bool
        The reduced form: fewer steps, the same claims with looser tolerances.
    out : path, optional
        Output folder (default ``fastbias-out/<target>``): PNG, CSV, ``verdict.json`` and the
        checkpoints of long runs.
    steps : int, optional
        Override the horizon of the target's main runs.
    jobs : int
        Threads for the target's independent runs.
    progress : bool
        Progress bars on long runs.
    resume : bool
        Continue runs from checkpoints left in ``out/checkpoints`` by an interrupted call.

    Returns
    -------
    Report
        ``.claims`` (each with ``.passed``), ``.passed``, ``.files``, ``.table()``.
    """
    return run_target(
        target, out=out, quick=quick, steps=steps, jobs=jobs, progress=progress, resume=resume
    )


def reproduce_all(
    *,
    quick: bool = False,
    out: str | os.PathLike = "fastbias-out",
    steps: int | None = None,
    jobs: int = 1,
    progress: bool = False,
    targets: Sequence[str] | None = None,
    log=None,
) -> tuple[list[Report], list[Path]]:
    """Run every target (or ``targets``) into ``out/<target>`` and write the index page.

    Returns the reports and the index files (``out/README.md``, ``out/index.html``). A target
    that raises is listed on the index page with its error and the others still run; Ctrl-C
    stops the sequence (finished runs stay checkpointed).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    names = list(targets) if targets is not None else sorted(TARGETS)
    reports: list[Report] = []
    failed: dict[str, str] = {}
    for i, name in enumerate(names, 1):
        tgt = TARGETS.get(name)
        est = (tgt.seconds_quick if quick else tgt.seconds_full) if tgt else float("nan")
        log(f"[{i}/{len(names)}] {name} (about {est:.0f} s) ...")
        t0 = time.perf_counter()
        try:
            rep = run_target(name, out=root / name, quick=quick, steps=steps, jobs=jobs,
                             progress=progress)  # fmt: skip
        except KeyboardInterrupt:
            write_index(reports, root, failed)
            raise
        except Exception as exc:  # one broken target must not hide the others
            failed[name] = f"{type(exc).__name__}: {exc}"
            log(f"    error after {time.perf_counter() - t0:.1f} s: {failed[name]}")
            continue
        ok, n = rep.counts
        log(f"    {ok}/{n} claims hold, {rep.elapsed:.1f} s")
        reports.append(rep)
    return reports, write_index(reports, root, failed)
