"""Training loops (compiled runs driven in chunks) and the records they produce."""

from .batch import train_batch
from .gd import resume, train
from .history import History, Run, checkpoint_steps

__all__ = ["train", "resume", "train_batch", "History", "Run", "checkpoint_steps"]
