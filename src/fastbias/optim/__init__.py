"""Training loops (compiled runs driven in chunks) and the records they produce."""

from .batch import train_batch
from .gd import train
from .history import History, Run, checkpoint_steps

__all__ = ["train", "train_batch", "History", "Run", "checkpoint_steps"]
