"""Divergence: a run stops with one error saying what to change as soon as anything it computes is inf or NaN.

The training loss (at each epoch's end, and whenever the progress display reads it), the weights and
BatchNorm statistics (before every checkpoint: a finite loss can hide an overflowed running variance),
and the validation loss. With several processes all of them agree before any raises, so none is left
waiting in a collective.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..analysis.evaluation import EvalResult
from ..errors import UserError
from .distributed import any_process

if TYPE_CHECKING:
    from .loop import Trainer


class TrainingError(UserError):
    """Training cannot go on (for example the loss diverged); the message says what to change."""


def diverged(what: str, step: int) -> TrainingError:
    return TrainingError(f"training diverged: {what} by step {step}; lower lr (or raise warmup_epochs, or set "
                         f"grad_clip) and train again")


def check_loss(loss: float, step: int) -> None:
    if not math.isfinite(loss):
        raise diverged(f"the training loss became {loss}", step)


def non_finite_tensors(trainer: Trainer) -> list[str]:
    """Names of the weights and buffers (BatchNorm statistics too) holding inf or NaN, EMA copy included."""
    models = {"": trainer.model, "ema ": trainer.ema.module if trainer.ema is not None else None}
    tensors = [(prefix + name, tensor) for prefix, model in models.items() if model is not None
               for name, tensor in model.state_dict().items() if tensor.is_floating_point()]
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in tensors]).cpu()  # one sync
    return [name for (name, _), ok in zip(tensors, finite.tolist()) if not ok]


def check_weights(trainer: Trainer) -> None:
    """A step can leave inf/NaN weights or BatchNorm statistics behind a finite loss; never let them reach a
    checkpoint. All processes agree (their BatchNorm statistics differ), so none is left waiting."""
    bad = non_finite_tensors(trainer)
    if any_process(bool(bad), trainer.distributed, trainer.loader.device):
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise diverged(f"inf or NaN in {len(bad)} of the model's tensors ({shown})" if bad else
                       "another process's weights became inf or NaN", trainer.state.step)


def check_validation(trainer: Trainer, val: EvalResult | None) -> None:
    bad = val is not None and not math.isfinite(val.loss)
    if any_process(bad, trainer.distributed, trainer.loader.device):
        raise diverged(f"the validation loss became {val.loss}" if bad else
                       "another process's validation loss became inf or NaN", trainer.state.step)
