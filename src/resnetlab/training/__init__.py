"""Training: the loop, optimizers and schedules, precision, checkpoints and resume, whole runs."""

from .loop import EpochMetrics, History, LoopState, Trainer, TrainingError, fit
from .optim import build_optimizer, build_schedule
from .run import TrainResult, train

__all__ = ["EpochMetrics", "History", "LoopState", "TrainResult", "Trainer", "TrainingError", "build_optimizer",
           "build_schedule", "fit", "train"]
