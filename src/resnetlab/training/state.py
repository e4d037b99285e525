"""What a training checkpoint holds beyond the model and optimizer: loop position, history, EMA, loss
scaler and every random number generator, so a resumed run continues exactly."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import EMA_KEY, LOOKAHEAD_KEY, load_checkpoint, save_checkpoint
from ..errors import ModelFileError
from .callbacks import state_dicts
from .history import EpochMetrics, LoopState
from .loop import Trainer


def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON part, tensor part) of the Python, NumPy and torch generators."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    version, internal, gauss_next = random.getstate()
    info = {"python": [version, list(internal), gauss_next], "numpy": [name, pos, has_gauss, gauss]}
    return info, tensors


def set_rng_state(info: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss_next = info["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, pos, has_gauss, gauss = info["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_training(path: Path, trainer: Trainer, extra: dict[str, Any] | None = None) -> Path:
    """Write `trainer` to a training checkpoint (model file + optimizer + everything above)."""
    rng_info, tensors = rng_state()
    if trainer.ema is not None:
        tensors.update({EMA_KEY + k: v for k, v in trainer.ema.state_dict().items()})
    if trainer.lookahead is not None:
        tensors.update({LOOKAHEAD_KEY + k: v for k, v in trainer.lookahead.state_dict().items()})
    state = {
        "loop": asdict(trainer.state),
        "history": [row.as_row() for row in trainer.history.rows],
        "ema_updates": trainer.ema.updates if trainer.ema is not None else None,
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "rng": rng_info,
        "callbacks": state_dicts(trainer.callbacks),
        **(extra or {}),
    }
    return save_checkpoint(path, trainer.model, trainer.info, trainer.optimizer, state, tensors)


def loop_state(saved: dict[str, Any]) -> LoopState:
    """The LoopState of a checkpoint (keys it no longer has, from older versions, are left out)."""
    known = {f.name for f in fields(LoopState)}
    return LoopState(**{k: v for k, v in saved.items() if k in known})


def saved_callback_state(state: dict[str, Any]) -> dict[str, dict]:
    """The callbacks' states of a checkpoint. Older versions kept the best validation result in the loop's
    state (`best_score`, before it `best_accuracy`): it becomes the run folder's (RunWriter's) best, so that
    a resumed old run does not overwrite best.safetensors with a worse epoch."""
    saved = dict(state.get("callbacks") or {})
    loop = state.get("loop", {})
    best = loop.get("best_score")
    if best is None and loop.get("best_accuracy") is not None:
        best = [loop["best_accuracy"], -math.inf]
    if "RunWriter" not in saved and best is not None:
        saved["RunWriter"] = {"best": best, "wait": 0, "best_epoch": loop.get("best_epoch", 0)}
    return saved


def restore_training(path: Path, trainer: Trainer) -> dict[str, Any]:
    """Load a checkpoint written by `save_training` into `trainer`; return the checkpoint's JSON state."""
    state = load_checkpoint(path, trainer.model, trainer.optimizer)
    tensors = state.pop("tensors")
    trainer.state = loop_state(state["loop"])
    trainer.history.rows = [EpochMetrics(**row) for row in state["history"]]
    if trainer.ema is not None:
        ema = {k[len(EMA_KEY):]: v for k, v in tensors.items() if k.startswith(EMA_KEY)}
        if not ema:
            raise ModelFileError(f"{path} has no EMA weights but ema_decay is on; resume with the settings of the run")
        trainer.ema.load_state_dict(ema, state["ema_updates"] or 0)
    if trainer.lookahead is not None:
        slow = {k[len(LOOKAHEAD_KEY):]: v for k, v in tensors.items() if k.startswith(LOOKAHEAD_KEY)}
        if not slow:
            raise ModelFileError(f"{path} has no lookahead weights but lookahead_steps is on; resume with the "
                                 "settings of the run")
        trainer.lookahead.load_state_dict(slow)
    if trainer.scaler is not None and state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], tensors)
    trainer.callback_state = saved_callback_state(state)  # given to the callbacks when the run starts
    return state
