"""Warnings that point at the user's line, however deep in fastbias they are issued."""

from __future__ import annotations

import sys
import warnings

__all__ = ["user_stacklevel", "warn_user"]


def user_stacklevel() -> int:
    """The ``stacklevel`` for a warning issued by this function's caller that points at the
    first frame outside the fastbias package."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastbias."):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the user's line."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("fastbias."):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
