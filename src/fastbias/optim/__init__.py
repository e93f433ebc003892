"""Training loops (compiled runs driven in chunks) and the records they produce."""

from .gd import train
from .history import History, Run, checkpoint_steps

__all__ = ["train", "History", "Run", "checkpoint_steps"]
