"""Training: the loop, optimizers and schedules, precision, checkpoints and resume, whole runs."""

from .history import EpochMetrics, History, LoopState
from .loop import Trainer, TrainingError, fit
from .optim import build_optimizer, build_schedule
from .run import TrainResult, train

__all__ = ["EpochMetrics", "History", "LoopState", "TrainResult", "Trainer", "TrainingError", "build_optimizer",
           "build_schedule", "fit", "train"]
