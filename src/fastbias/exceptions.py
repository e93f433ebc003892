"""Exceptions raised by fastbias. Each names the problem and, where there is one, the fix."""

from __future__ import annotations


class FastbiasError(Exception):
    """Base class of every fastbias error."""


class NotSeparableError(FastbiasError, ValueError):
    """The data admit no homogeneous linear separator, so no max-margin solution exists."""


class DivergenceError(FastbiasError, FloatingPointError):
    """The loss blew up during a run: the step size is too large for this data.

    Attributes
    ----------
    step : int
        The step whose iterate first violated the divergence test.
    suggested_lr : float
        A step size that is stable at initialization for this data and loss.
    """

    def __init__(self, message: str, step: int, suggested_lr: float):
        super().__init__(message)
        self.step = step
        self.suggested_lr = suggested_lr


class SolverError(FastbiasError, RuntimeError):
    """A reference solver failed to reach the requested accuracy."""


class CheckpointError(FastbiasError, ValueError):
    """A file is not a checkpoint fastbias can load: not a checkpoint at all (a pickle, another
    file, a directory), damaged (its checksum does not match), of another format version, or
    inconsistent. The message names the file and the problem; nothing in the file is run."""
