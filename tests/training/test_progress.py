"""The rich progress bar: its timers stay whole at any usual terminal width."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from resnetlab.training.progress import RichProgress

# an end-of-epoch summary as EpochMetrics.summary() writes it, with validation: the longest a row gets
SUMMARY = "loss 0.1234 acc 96.5% | val_loss 0.2345 val_acc 93.2% | lr 0.000123 12,345 img/s 12.3s"


def _finished_row(width: int) -> str:
    """The last line a RichProgress prints at `width` columns for an epoch that took 5 seconds."""
    console = Console(width=width, file=io.StringIO(), record=True)
    progress = RichProgress(console)
    progress.start_epoch(10, 100, 39062)
    progress.bar.tasks[0].start_time -= 5  # the epoch started 5 s ago
    progress.update(20000, 0.1234, 0.965, 12345.0, lr=0.000123, step=123456)
    progress.end_epoch(SUMMARY)
    progress.close()
    return console.export_text().rstrip("\n").splitlines()[-1]


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_timers_are_never_cut_short(width):
    row = _finished_row(width)
    assert "0:00:05 ETA 0:00:00" in row  # elapsed and remaining, whole
    assert "Epoch 10/100" in row and "39062/39062" in row
    assert len(row) <= width


def test_stats_are_shortened_before_the_timers_and_whole_when_they_fit():
    assert SUMMARY in _finished_row(200)
    narrow = _finished_row(100)
    assert "loss 0.1234 acc 96.5%" in narrow and "…" in narrow and SUMMARY not in narrow
    assert "━" not in _finished_row(80)  # at a narrow width the bar is left out, the numbers stay
