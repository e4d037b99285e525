"""What a run records as it goes: each epoch's metrics, the History `fit` returns, and where the loop is (LoopState).

LoopState is saved in every checkpoint (JSON), so a resumed run continues from the same position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    train_top5: float  # top-k accuracy, k = min(5, classes)
    val_loss: float | None
    val_accuracy: float | None
    val_top5: float | None
    lr: float  # at the end of the epoch
    seconds: float  # training time of the epoch, validation excluded
    images_per_second: float

    def as_row(self) -> dict[str, float | int | None]:
        return asdict(self)

    def summary(self) -> str:
        text = f"loss {self.train_loss:.4f} acc {self.train_accuracy:.1%}"
        if self.val_loss is not None:
            text += f" | val_loss {self.val_loss:.4f} val_acc {self.val_accuracy:.1%}"
        return text + f" | lr {self.lr:.3g} {self.images_per_second:,.0f} img/s {self.seconds:.1f}s"


class History:
    """What `fit` returns; `history.history` and `history.epoch` read as in Keras.

    `metrics` chooses the keys besides the losses: "accuracy" and/or "top5" (and their val_ twins), or a
    mapping of the keys to show to those two (Keras keys them by the names given to compile: {"acc": "accuracy"}).
    """

    def __init__(self, metrics: Sequence[str] | Mapping[str, str] = ("accuracy",)) -> None:
        self.rows: list[EpochMetrics] = []
        self.metrics = dict(metrics) if isinstance(metrics, Mapping) else {m: m for m in metrics}

    @property
    def epoch(self) -> list[int]:
        return [row.epoch - 1 for row in self.rows]  # Keras counts epochs from 0

    def keys(self, validated: bool) -> list[str]:
        """The names an epoch is logged under (Keras' logs keys), with the val_ ones when there is validation."""
        names = ["loss", *self.metrics]
        return names + ([f"val_{name}" for name in names] if validated else []) + ["lr"]

    def _values(self, row: EpochMetrics) -> dict[str, float]:
        fields = [row.train_loss, *(getattr(row, f"train_{m}") for m in self.metrics.values())]
        if row.val_loss is not None:
            fields += [row.val_loss, *(getattr(row, f"val_{m}") for m in self.metrics.values())]
        return dict(zip(self.keys(row.val_loss is not None), [*fields, row.lr]))

    def latest(self) -> dict[str, float]:
        """The last epoch's values by name ({} before the first epoch ends)."""
        return self._values(self.rows[-1]) if self.rows else {}

    @property
    def history(self) -> dict[str, list[float]]:
        validated = bool(self.rows) and self.rows[0].val_loss is not None
        out: dict[str, list[float]] = {key: [] for key in self.keys(validated)}
        for row in self.rows:
            for key, value in self._values(row).items():
                out[key].append(value)
        return out


@dataclass
class LoopState:
    """Where the run is; saved in every checkpoint (JSON)."""

    epoch: int = 1  # the epoch in progress, 1-based
    batch: int = 0  # batches of it done
    step: int = 0  # optimizer steps done in the whole run
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # epoch so far: loss x n, correct, top-5
    seen: int = 0  # images of the epoch so far (this process)
    seconds: float = 0.0  # training time of the epoch so far
    warming: bool = False  # He et al.'s low-lr warm-up still on
    best_score: list[float] | None = None  # best (val accuracy, -val loss) so far; ties on accuracy go to the loss
    best_epoch: int = 0  # the epoch that scored it (every epoch counts as best when there is no validation)
    done: bool = False  # finished: all epochs, max_steps or early stopping
    stop_reason: str | None = None  # why it stopped early (patience, SIGINT, ...)
    lr_factor: float = 1.0  # multiplies the schedule from here on (Keras' ReduceLROnPlateau, LearningRateScheduler)
