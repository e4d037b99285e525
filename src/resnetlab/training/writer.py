"""The run folder: metrics.csv, `last` and `best` checkpoints, curves.png, TensorBoard events."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..analysis.plots import training_curves
from ..atomic import write_csv
from ..checkpoint import read_info, save_model
from ..config import Config, save_config
from .callbacks import Callback
from .history import EpochMetrics
from .loop import Trainer
from .state import save_training
from .stopping import SCORE, Plateau, monitored


def _tensorboard(run_dir: Path) -> Any | None:
    """A SummaryWriter when the tensorboard package is installed, else None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir))


class RunWriter(Callback):
    """Writes a run's files (rank 0 only): after every epoch, and `last` whenever the loop asks for a checkpoint."""

    def __init__(self, run_dir: Path, config: Config, *, resumed: bool = False):
        self.run_dir, self.config = run_dir, config
        # config.yaml must agree with the settings in `last` (resume checks): a resumed run with new settings
        # rewrites it only after its first checkpoint, a new run at once (there is no checkpoint yet)
        self._config_pending = True
        if not resumed:
            self._write_config()
        self.csv_path = run_dir / "metrics.csv"
        self.tensorboard = _tensorboard(run_dir) if config.run.tensorboard else None
        # the best validation result so far: (accuracy, -loss), so that ties on accuracy go to the loss
        self.best = Plateau("max")
        for stale in run_dir.glob(".*.tmp"):  # left by a process killed mid-write; the real files are intact
            stale.unlink(missing_ok=True)

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.safetensors"

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.safetensors"

    def _summary(self, trainer: Trainer, metrics: EpochMetrics | None) -> dict[str, Any]:
        summary = {"dataset": self.config.data.name, "epochs": self.config.train.epochs, "step": trainer.state.step,
                   "ema": trainer.ema is not None, "config": self.config.to_dict(),
                   "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        # the words as typed, and beside them where they lead from here: a model evaluated from another folder
        # still finds its data (ModelInfo.trained_data)
        for key, typed in (("dataset_path", self.config.data.name), ("data_dir_path", self.config.data.data_dir)):
            if typed and Path(typed).expanduser().exists():
                summary[key] = str(Path(typed).expanduser().resolve())
        if metrics is not None:
            summary.update({k: v for k, v in metrics.as_row().items() if k not in ("seconds", "images_per_second")})
        return summary

    @property
    def best_epoch(self) -> int:
        """The epoch best.safetensors holds (from 1; 0 before the first epoch ends)."""
        return self.best.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return self.best.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best.load_state_dict(state)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.epoch_end(trainer, metrics)

    def on_checkpoint(self, trainer: Trainer) -> None:
        self.save_last(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        self.close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self.close()

    def save_last(self, trainer: Trainer) -> None:
        """Write the training checkpoint `last.safetensors` (atomically)."""
        trainer.info.training = self._summary(trainer, trainer.history.rows[-1] if trainer.history.rows else None)
        save_training(self.last_path, trainer)
        if self._config_pending:
            self._write_config()

    def _write_config(self) -> None:
        save_config(self.config, self.run_dir / "config.yaml")
        self._config_pending = False

    def describe_checkpoints(self) -> str:
        """What the run folder holds to go on from, in words (after a failure)."""
        held = []
        for path in (self.last_path, self.best_path):
            if path.is_file():
                training = read_info(path).training
                when = f"after epoch {training['epoch']}, " if training.get("epoch") else ""
                held.append(f"{path.name} ({when}step {training.get('step', '?')})")
        if not held:
            return f"{self.run_dir} holds no checkpoint: it failed before the first one was written"
        return f"{self.run_dir} holds {' and '.join(held)}; resume={self.run_dir} goes on from last.safetensors"
    def epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        score = monitored(trainer, metrics, SCORE)  # what patience= watches too
        if score is None:  # without validation every epoch is the best so far
            self.best.best_epoch = metrics.epoch
        if score is None or self.best.observe(score, metrics.epoch):
            trainer.info.training = self._summary(trainer, metrics)
            if trainer.ema is not None:  # eval_model is the EMA model: the file says so (evaluate reports it)
                trainer.info.training["weights"] = "ema"
            save_model(self.best_path, trainer.eval_model, trainer.info)
        self.save_last(trainer)
        self._write_csv(trainer.history.rows)  # after `last`: the csv never holds an epoch the checkpoint lacks
        if self.tensorboard is not None:
            for key, value in metrics.as_row().items():
                if key != "epoch" and value is not None:
                    self.tensorboard.add_scalar(key.replace("_", "/", 1), value, metrics.epoch)
            self.tensorboard.flush()
        if self.config.run.plots:
            training_curves([row.as_row() for row in trainer.history.rows], self.run_dir / "curves.png")

    def _write_csv(self, rows: list[EpochMetrics]) -> None:
        """Write metrics.csv from the history (the checkpoint's): a resumed run never repeats an epoch's row."""
        if rows:
            header = list(rows[0].as_row())
            write_csv(self.csv_path, header, [["" if v is None else v for v in row.as_row().values()] for row in rows])

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
