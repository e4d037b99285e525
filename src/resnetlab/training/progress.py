"""Training progress display: one small interface, a rich bar for terminals, plain lines for logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from ..errors import ConfigError
from .callbacks import Callback


class ProgressDisplay(Protocol):
    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None: ...
    def due(self) -> bool: ...
    def update(self, batch: int, loss: float, accuracy: float, images_per_second: float, *, lr: float = 0.0,
               step: int = 0) -> None: ...
    def end_epoch(self, summary: str) -> None: ...
    def close(self) -> None: ...


class _StatsColumn(TextColumn):
    """The loss/accuracy text: one line, cut short with "…" where the row is too wide (rather than a timer)."""

    def __init__(self) -> None:
        super().__init__("{task.fields[stats]}", markup=False, table_column=Column())  # a wrapable column shrinks

    def render(self, task: Task) -> Text:
        text = super().render(task)
        text.no_wrap, text.overflow = True, "ellipsis"
        return text


class _FittedProgress(Progress):
    """A Progress whose timers are never cut: below `narrow` columns the bar is left out, and the stats shrink."""

    narrow = 100  # terminal columns; an 80-column row then still shows the loss and accuracy

    def __init__(self, *columns: ProgressColumn, console: Console, **options: Any) -> None:
        self.terminal = console  # read while Progress.__init__ runs, before its `console` property works
        super().__init__(*columns, console=console, **options)

    def make_tasks_table(self, tasks: Iterable[Task]) -> Table:
        wide = self.terminal.width >= self.narrow
        columns = [c for c in self.columns if wide or not isinstance(c, BarColumn)]
        table = Table.grid(*(c.get_table_column().copy() for c in columns), padding=(0, 1), expand=self.expand)
        for task in tasks:
            if task.visible:
                table.add_row(*(c(task) for c in columns))
        return table


def _timer() -> Column:
    return Column(no_wrap=True, min_width=7)  # "0:00:05" whole, never shrunk to fit the row


class RichProgress:
    """A Keras-like bar per epoch with loss, accuracy, lr, step, images/s, elapsed time and ETA."""

    refresh_seconds = 0.2  # how often `due()` allows an update (each update syncs the device)

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        # rich shrinks the wrapable columns of a row too wide for the terminal: only the bar and the stats are
        # (rich's default lets it squeeze the timers to "0:…" at 120 columns)
        self.bar = _FittedProgress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
            MofNCompleteColumn(table_column=Column(no_wrap=True)), _StatsColumn(),
            TimeElapsedColumn(table_column=_timer()), TextColumn("ETA"), TimeRemainingColumn(table_column=_timer()),
            console=self.console, transient=False,
        )
        self.bar.start()
        self.task: int | None = None
        self.last = 0.0

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.task = self.bar.add_task(f"Epoch {epoch}/{epochs}", total=steps, completed=done, stats="")
        self.steps, self.last = steps, 0.0

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.refresh_seconds

    def update(self, batch: int, loss: float, accuracy: float, images_per_second: float, *, lr: float = 0.0,
               step: int = 0) -> None:
        self.last = time.perf_counter()
        stats = f"loss {loss:.4f} acc {accuracy:.1%} lr {lr:.3g} step {step:,} {images_per_second:,.0f} img/s"
        self.bar.update(self.task, completed=batch, stats=stats)

    def end_epoch(self, summary: str) -> None:
        self.bar.update(self.task, completed=self.steps, stats=summary)  # a finished task stops its clock

    def close(self) -> None:
        self.bar.stop()


class PlainProgress:
    """One line per epoch, for logs and non-terminal output."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.prefix = ""

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.prefix = f"Epoch {epoch}/{epochs}"

    def due(self) -> bool:
        return False

    def update(self, batch: int, loss: float, accuracy: float, images_per_second: float, *, lr: float = 0.0,
               step: int = 0) -> None:
        pass

    def end_epoch(self, summary: str) -> None:
        print(f"{self.prefix}: {summary}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class SilentProgress(PlainProgress):
    def end_epoch(self, summary: str) -> None:
        pass


class ProgressCallback(Callback):
    """Shows a run on a ProgressDisplay: a bar (or lines) per epoch and a summary at each epoch's end."""

    def __init__(self, display: ProgressDisplay) -> None:
        self.display = display

    def on_epoch_begin(self, trainer: Any) -> None:
        self.display.start_epoch(trainer.state.epoch, trainer.cfg.epochs, len(trainer.loader), trainer.state.batch)

    def on_batch_end(self, trainer: Any) -> None:
        if self.display.due():  # reading the running sums waits for the device: only when the display refreshes
            loss, accuracy, rate = trainer.running_metrics()
            self.display.update(trainer.state.batch, loss, accuracy, rate, lr=trainer.lr, step=trainer.state.step)

    def on_epoch_end(self, trainer: Any, metrics: Any) -> None:
        self.display.end_epoch(metrics.summary())

    def on_train_end(self, trainer: Any) -> None:
        self.display.close()

    def on_exception(self, trainer: Any, error: BaseException) -> None:
        self.display.close()


DISPLAYS = {"rich": RichProgress, "plain": PlainProgress, "none": SilentProgress}


def make_progress(kind: str = "auto") -> ProgressDisplay:
    """`auto`: a rich bar on a terminal, plain lines otherwise; also `rich`, `plain`, `none`."""
    if kind == "auto":
        kind = "rich" if Console().is_terminal else "plain"
    if kind not in DISPLAYS:
        raise ConfigError(f"unknown progress display {kind!r}; choose auto, {', '.join(DISPLAYS)}")
    return DISPLAYS[kind]()
