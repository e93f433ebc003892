"""A minimal progress bar with ETA, updated once per compiled chunk (never per step)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:4.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


class ProgressBar:
    """``[#####     ]  52%  5.2e+08/1e+09 steps  12.3s elapsed  ETA 11.4s``."""

    def __init__(
        self, total: int, enabled: bool = True, stream: TextIO | None = None, width: int = 30
    ):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self.done0 = 0

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        frac = min(done / self.total, 1.0) if self.total else 1.0
        fill = int(round(frac * self.width))
        eta = elapsed / frac * (1 - frac) if frac > 0 else float("nan")
        self.stream.write(
            f"\r[{'#' * fill}{' ' * (self.width - fill)}] {100 * frac:3.0f}%  "
            f"{done:.3g}/{self.total:.3g} steps  {_fmt_seconds(elapsed)} elapsed  "
            f"ETA {_fmt_seconds(eta) if eta == eta else '?'}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
