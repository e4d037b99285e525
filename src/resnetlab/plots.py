"""Every matplotlib figure resnetlab draws (headless: the Agg backend, PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Loss, accuracy and learning rate per epoch (train and validation) as one PNG."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    figure, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.8))
    loss_ax.plot(epochs, [r["train_loss"] for r in rows], label="train")
    acc_ax.plot(epochs, [100 * r["train_accuracy"] for r in rows], label="train")
    if rows and rows[0].get("val_loss") is not None:
        loss_ax.plot(epochs, [r["val_loss"] for r in rows], label="validation")
        acc_ax.plot(epochs, [100 * r["val_accuracy"] for r in rows], label="validation")
    lr_ax.plot(epochs, [r["lr"] for r in rows], color="tab:green")
    for axis, title, unit in ((loss_ax, "loss", "cross-entropy"), (acc_ax, "accuracy", "%"),
                              (lr_ax, "learning rate (end of epoch)", "lr")):
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.set_ylabel(unit)
        axis.grid(alpha=0.3)
    loss_ax.legend()
    acc_ax.legend()
    figure.tight_layout()
    path = atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    plt.close(figure)
    return path


def lr_finder(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None, path: str | Path) -> Path:
    """Loss against learning rate (log scale) from the range test, with the suggested lr marked."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    axis.plot(lrs, losses)
    axis.set_xscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("loss (smoothed)")
    axis.set_title("learning-rate range test")
    axis.grid(alpha=0.3, which="both")
    if suggestion is not None:
        axis.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested lr {suggestion:.3g}")
        axis.legend()
    figure.tight_layout()
    path = atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    plt.close(figure)
    return path
