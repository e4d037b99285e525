"""Training: the loop, optimizers and schedules, precision, checkpoints and resume, whole runs."""

from .callbacks import Callback, LambdaHooks
from .divergence import TrainingError
from .history import EpochMetrics, History, LoopState
from .loop import Trainer, fit
from .optim import build_optimizer, build_schedule
from .run import TrainResult, train

__all__ = ["Callback", "EpochMetrics", "History", "LambdaHooks", "LoopState", "TrainResult", "Trainer",
           "TrainingError", "build_optimizer", "build_schedule", "fit", "train"]
