"""The driver: runs a plan's compiled kernel in chunks, with progress, Ctrl-C and checkpoints."""

from __future__ import annotations

import signal
import threading

__all__ = ["InterruptFlag"]


class InterruptFlag:
    """Turns Ctrl-C into a flag checked between chunks (main thread only)."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False
