"""Training loops (compiled runs driven in chunks) and the records they produce."""

from .batch import train_batch
from .driver import execute
from .flow import FlowHistory, flow
from .gd import resume, train
from .history import History, Run, checkpoint_steps
from .multiclass import MulticlassRun, train_multiclass
from .optimizers import OPTIMIZERS, make_optimizer_runner
from .planner import plan
from .softmax_net import SoftmaxNetworkRun, resume_softmax_network, train_softmax_network
from .spec import RunSpec, build_spec

__all__ = [
    "train",
    "resume",
    "train_batch",
    "flow",
    "train_multiclass",
    "MulticlassRun",
    "train_softmax_network",
    "resume_softmax_network",
    "SoftmaxNetworkRun",
    "OPTIMIZERS",
    "make_optimizer_runner",
    "History",
    "FlowHistory",
    "Run",
    "checkpoint_steps",
    "RunSpec",
    "build_spec",
    "plan",
    "execute",
]
