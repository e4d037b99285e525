"""What a run records as it goes: each epoch's metrics, the History `fit` returns, and where the loop is (LoopState).

LoopState is saved in every checkpoint (JSON), so a resumed run continues from the same position.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    """What a run records per epoch (`rows`, EpochMetrics) and the same by name: `history["val_accuracy"]`
    lists every epoch's value. The names are the loop's own: loss, accuracy, top5, their val_ twins and lr
    (the Keras facade keys them by the names given to compile: keras/history.py)."""

    METRICS = ("accuracy", "top5")  # EpochMetrics' train_/val_ fields besides the loss

    def __init__(self) -> None:
        self.rows: list[EpochMetrics] = []

    @property
    def epochs(self) -> list[int]:
        return [row.epoch for row in self.rows]  # from 1, as the loop counts

    def keys(self, validated: bool, metrics: Mapping[str, str] | None = None) -> list[str]:
        """The names an epoch is logged under, with the val_ ones when there is validation; `metrics` maps
        the names to show to the loop's (accuracy, top5)."""
        names = ["loss", *(metrics if metrics is not None else self.METRICS)]
        return names + ([f"val_{name}" for name in names] if validated else []) + ["lr"]

    def values(self, row: EpochMetrics, metrics: Mapping[str, str] | None = None) -> dict[str, float]:
        """One epoch's values by name (see `keys`)."""
        metrics = metrics if metrics is not None else {m: m for m in self.METRICS}
        fields = [row.train_loss, *(getattr(row, f"train_{m}") for m in metrics.values())]
        if row.val_loss is not None:
            fields += [row.val_loss, *(getattr(row, f"val_{m}") for m in metrics.values())]
        return dict(zip(self.keys(row.val_loss is not None, metrics), [*fields, row.lr]))

    def latest(self, metrics: Mapping[str, str] | None = None) -> dict[str, float]:
        """The last epoch's values by name ({} before the first epoch ends)."""
        return self.values(self.rows[-1], metrics) if self.rows else {}

    def by_name(self, metrics: Mapping[str, str] | None = None) -> dict[str, list[float]]:
        """Every epoch's values, one list per name."""
        validated = bool(self.rows) and self.rows[0].val_loss is not None
        out: dict[str, list[float]] = {key: [] for key in self.keys(validated, metrics)}
        for row in self.rows:
            for key, value in self.values(row, metrics).items():
                out[key].append(value)
        return out

    def __getitem__(self, name: str) -> list[float]:
        values = self.by_name()
        if name not in values:
            raise KeyError(f"History has no {name!r}; it has {', '.join(values)}")
        return values[name]


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
    done: bool = False  # finished: all epochs, max_steps or early stopping
    stop_reason: str | None = None  # why it stopped early (patience, SIGINT, ...)
