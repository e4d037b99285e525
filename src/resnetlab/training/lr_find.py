"""Learning-rate range test (Smith 2017, "Cyclical Learning Rates"; fastai's lr_find).

Train a fresh model for a few hundred steps while the learning rate grows exponentially from
`start_lr` to `end_lr`; record the smoothed loss; stop once it exceeds 4x its minimum. The suggested lr
is where the loss falls fastest (steepest negative slope against log lr).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ..analysis.plots import lr_finder
from ..config import Config
from ..device import resolve_device
from ..errors import ConfigError
from .callbacks import LambdaHooks
from .divergence import TrainingError
from .loop import Trainer
from .optim import base_lr, class_weights
from .run import build_model, build_train_loader, load_run_data, make_run_dir, seed_everything


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # smoothed (exponential moving average with bias correction)
    suggestion: float | None  # steepest descent
    min_loss_lr: float | None  # lr of the lowest smoothed loss (a tenth of it is fastai's other rule)
    out_dir: Path | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out_dir"] = str(self.out_dir) if self.out_dir else None
        return data


def suggest_lr(lrs: list[float], losses: list[float]) -> float | None:
    """The lr where the smoothed loss falls fastest per unit of log lr, ignoring both ends' noise."""
    if len(lrs) < 10:
        return None
    skip = max(1, len(lrs) // 10)
    slopes = [(losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
              for i in range(skip, len(lrs) - skip)]
    steepest = min(range(len(slopes)), key=slopes.__getitem__)
    return lrs[skip + steepest] if slopes[steepest] < 0 else None


def lr_find(config: Config, *, start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 200,
            smoothing: float = 0.98, diverge: float = 4.0, write: bool = True) -> LRFindResult:
    """Run the range test for the model and data of `config`; write lr_find.png/.json into a run folder."""
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if steps < 10:
        raise ConfigError(f"steps must be at least 10, got {steps}")
    seed_everything(config.run.seed)
    device = resolve_device(config.run.device)
    data = load_run_data(config)
    model, info, _ = build_model(config, data)  # as `train` would build it: normalization, weights=
    weights = class_weights(config.train, data.train.labels, len(data.class_names))
    trainer = Trainer(model, info, build_train_loader(data, config, device), config.train, class_weight=weights)
    lrs, losses, best, average = [], [], math.inf, 0.0
    factor = (end_lr / start_lr) ** (1 / (steps - 1))

    def record(t: Trainer) -> None:  # after every step: one device sync, fine for a short test
        nonlocal best, average
        average = smoothing * average + (1 - smoothing) * t.last_loss.item()
        smoothed = average / (1 - smoothing ** (len(lrs) + 1))
        lrs.append(t.lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if len(lrs) >= steps or not math.isfinite(smoothed) or smoothed > diverge * best:
            t.stop.request("range test done")

    base = base_lr(trainer.optimizer)  # the schedule is a multiplier of it: exponential growth, step by step
    if base <= 0:
        raise ConfigError(f"lr-find scales the optimizer's lr, which is {base}; set lr= to any positive value")
    trainer.schedule = lambda step: start_lr * factor ** step / base
    trainer.callbacks.append(LambdaHooks(on_batch_end=record))
    with trainer.stop.installed():
        while not trainer.stop.requested:  # as many epochs as the steps need
            try:
                if trainer.train_epoch():
                    trainer.finish_epoch()
            except TrainingError:  # the loss went non-finite: where a range test ends, not an error
                if not losses or math.isfinite(losses[-1]):
                    raise
                break
    finite = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    lrs, losses = [lr for lr, _ in finite], [loss for _, loss in finite]
    suggestion = suggest_lr(lrs, losses)
    min_lr = lrs[min(range(len(losses)), key=losses.__getitem__)] if losses else None
    result = LRFindResult(lrs, losses, suggestion, min_lr)
    if write:
        name = config.run.name or f"lr-find-{config.model.name}-{Path(config.data.name).name}"
        result.out_dir = make_run_dir(config.run.project, name)
        lr_finder(lrs, losses, suggestion, result.out_dir / "lr_find.png")
        (result.out_dir / "lr_find.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
