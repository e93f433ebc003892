"""The progress bar of long runs: tqdm, updated once per compiled chunk (never per step).

``tqdm.auto`` draws a widget in Jupyter notebooks and a text bar in terminals, and the bar
turns itself off when stderr is not a terminal (CI logs, pipes), unless a stream is passed
explicitly. Besides tqdm's rate and remaining time, the postfix shows the estimated *total*
wall time of the run from the first finished chunk on, so a run of ``steps=1e12`` says up
front that it would take days.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["ProgressBar", "format_duration"]


def format_duration(seconds: float) -> str:
    """``4.2s``, ``3m07s``, ``5h12m``, ``12.4 days``, ``3.2e+04 years``: a human-sized duration."""
    s = float(seconds)
    if s != s or s < 0:
        return "?"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    days = s / 86400
    if days < 365.25:
        return f"{days:.1f} days"
    years = days / 365.25
    return f"{years:.1f} years" if years < 1e4 else f"{years:.2g} years"


class ProgressBar:
    """A tqdm bar over ``total`` units, driven by absolute counts.

    Parameters
    ----------
    total : int
        Steps (or units) of the whole run.
    enabled : bool
        False: no bar and no tqdm import at all.
    stream : file, optional
        Where to draw. Default: stderr, and then the bar is only shown on a terminal or in a
        notebook; an explicit stream always gets the bar.
    unit : str
        Unit name shown by tqdm.

    ``update(done)`` sets the count to ``done`` (called once per compiled chunk); the first
    call fixes the starting count (a resumed run starts part way). ``close()`` ends the line.
    """

    def __init__(
        self, total: int, enabled: bool = True, stream: TextIO | None = None, unit: str = "steps"
    ):
        self.total = int(total)
        self.enabled = bool(enabled)
        self.stream = stream
        self.unit = unit
        self.estimated_total: float | None = None  # seconds, once the first chunk has run
        self._bar = None
        self._start = time.perf_counter()
        self._done0: int | None = None

    def _open(self, done: int):
        from tqdm.auto import tqdm

        return tqdm(
            total=self.total,
            initial=done,
            file=self.stream,
            disable=False if self.stream is not None else None,
            unit=self.unit,
            unit_scale=self.unit == "steps",  # 1.00T steps, but 3/8 runs
            dynamic_ncols=True,
            mininterval=0.0,
            leave=True,
        )

    def update(self, done: int) -> None:
        """Set the count to ``done``; from the second call on, show the estimated total time."""
        if not self.enabled:
            return
        done = int(done)
        now = time.perf_counter()
        if self._bar is None:
            self._bar = self._open(done)
            self._done0, self._start = done, now
            return
        if done > self._done0 and now > self._start:
            rate = (done - self._done0) / (now - self._start)
            elapsed = now - self._start
            self.estimated_total = elapsed + max(self.total - done, 0) / rate
            self._bar.set_postfix_str(
                f"est. total {format_duration(self.estimated_total)}", refresh=False
            )
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """End the bar (idempotent)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
