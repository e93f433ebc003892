"""Warnings that point at the user's line, however deep in fastbias they are issued, and the
grouping of many runs' warnings into one (``train_batch``)."""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["grouped_warnings", "user_stacklevel", "warn_user"]

# where warn_user's warnings go while grouped_warnings is active in this thread / context
_SINK: ContextVar[list[tuple[str, type[Warning]]] | None] = ContextVar(
    "fastbias_warning_sink", default=None
)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _internal(frame) -> bool:
    """Whether ``frame`` is fastbias's own code (or contextlib's, which runs the exit of
    :func:`grouped_warnings`), not the user's."""
    name = frame.f_globals.get("__name__", "")
    return name.startswith("fastbias.") or name == "contextlib"


def user_stacklevel() -> int:
    """The ``stacklevel`` for a warning issued by this function's caller that points at the
    first frame outside the fastbias package."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and _internal(frame):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the user's line (collected instead inside :func:`grouped_warnings`)."""
    sink = _SINK.get()
    if sink is not None:
        sink.append((message, category))
        return
    level, frame = 2, sys._getframe(1)
    while frame is not None and _internal(frame):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


@contextmanager
def grouped_warnings(n_runs: int) -> Iterator[None]:
    """Collect the :func:`warn_user` warnings of ``n_runs`` runs set up in this block and
    issue each kind once at its end: a warning that only some runs' figures tell apart (the
    lambda of Yun et al.'s condition for every seed) becomes "k of the n runs: <the first
    one's message> (...)". A kind raised by one run only is issued as it was. Per thread and
    context (a ``ContextVar``), so concurrent batches do not mix their warnings."""
    sink: list[tuple[str, type[Warning]]] = []
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)
        groups: dict[tuple[type[Warning], str], list[str]] = {}
        for message, category in sink:
            groups.setdefault((category, _NUMBER.sub("#", message)), []).append(message)
        for (category, _), messages in groups.items():
            if len(messages) == 1:
                warn_user(messages[0], category)
                continue
            differ = len(set(messages)) > 1
            warn_user(
                f"{len(messages)} of the {n_runs} runs: {messages[0]}"
                + (
                    " (the figures of the first of them; they differ from run to run)"
                    if differ
                    else ""
                ),
                category,
            )
