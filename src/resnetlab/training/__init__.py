"""Training: the loop, optimizers and schedules, progress display, and whole runs."""

from .loop import EpochMetrics, History, TrainingError, fit, train_one_epoch
from .optim import build_optimizer, build_schedule
from .run import TrainResult, train

__all__ = ["EpochMetrics", "History", "TrainResult", "TrainingError", "build_optimizer", "build_schedule", "fit",
           "train", "train_one_epoch"]
