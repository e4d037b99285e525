"""Every matplotlib figure resnetlab draws (headless: the Agg backend, PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    """Write a figure as PNG atomically and free it."""
    plt = _pyplot()
    path = atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=110, format="png", bbox_inches="tight"))
    plt.close(figure)
    return path


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
    return _save(figure, path)


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
    return _save(figure, path)


def confusion_matrix(confusion, class_names: Sequence[str], path: str | Path, *, normalize: bool) -> Path:
    """Confusion matrix, rows true and columns predicted; counts, or each row as shares of its class.

    Cells are annotated up to 20 classes; beyond that the colour carries the value and the tick labels
    shrink so that 100 class names stay readable.
    """
    import numpy as np

    plt = _pyplot()
    matrix = np.asarray(confusion, dtype=float)
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    count = len(class_names)
    side = max(6.0, min(0.22 * count + 3, 26.0))
    figure, axis = plt.subplots(figsize=(side, side * 0.9))
    image = axis.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    scale = "share of the true class" if normalize else "images"
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label=scale)
    font = 9 if count <= 20 else max(4, 9 - count // 20)
    axis.set_xticks(range(count), labels=class_names, rotation=90, fontsize=font)
    axis.set_yticks(range(count), labels=class_names, fontsize=font)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title("confusion matrix" + (" (normalized by true class)" if normalize else " (counts)"))
    if count <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            axis.text(col, row, text, ha="center", va="center", fontsize=7,
                      color="white" if value > threshold else "black")
    return _save(figure, path)


def reliability_diagram(probs, labels, path: str | Path, *, bins: int = 15, ece: float | None = None) -> Path:
    """Accuracy against confidence in equal-width bins; the gap to the diagonal is miscalibration."""
    from .evaluation import calibration_bins

    plt = _pyplot()
    edges, accuracy, _, counts = calibration_bins(probs, labels, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    figure, (axis, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    filled = counts > 0  # an empty bin has no accuracy: drawing it at 0 would show a false gap
    axis.bar(centres[filled], accuracy[filled], width=1 / bins, edgecolor="black", label="accuracy")
    axis.bar(centres[filled], (centres - accuracy)[filled], bottom=accuracy[filled], width=1 / bins,
             color="tab:red", alpha=0.3, label="gap to perfect calibration")
    axis.plot([0, 1], [0, 1], "k--", linewidth=1)
    axis.set_ylabel("accuracy")
    axis.set_title("reliability diagram" + (f" (ECE {ece:.3f})" if ece is not None else ""))
    axis.legend(loc="upper left")
    hist.bar(centres, counts, width=1 / bins, color="gray")
    hist.set_xlabel("confidence (top probability)")
    hist.set_ylabel("images")
    return _save(figure, path)


def per_class_accuracy(class_names: Sequence[str], accuracy: Sequence[float], path: str | Path) -> Path:
    """Horizontal bars of each class's accuracy (recall), worst at the top."""
    import numpy as np

    plt = _pyplot()
    values = np.nan_to_num(np.asarray(accuracy, dtype=float), nan=0.0)
    order = np.argsort(values)
    count = len(class_names)
    figure, axis = plt.subplots(figsize=(7, max(3.0, 0.2 * count + 1)))
    axis.barh(range(count), values[order] * 100, color="tab:blue")
    axis.set_yticks(range(count), labels=[class_names[i] for i in order], fontsize=9 if count <= 20 else 6)
    axis.set_xlabel("accuracy (%)")
    axis.set_xlim(0, 100)
    axis.set_title("accuracy per class")
    axis.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def image_grid(images: Sequence, titles: Sequence[str], path: str | Path, *, columns: int = 4,
               title: str = "") -> Path:
    """Images (uint8 [H, W, C] or [H, W]) in a grid, each with a caption; small images stay pixel-sharp."""
    plt = _pyplot()
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 2.6, rows * 3.1), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption in zip(axes.flat, images, titles):
        gray = image.ndim == 2 or image.shape[-1] == 1
        axis.imshow(image.squeeze(), cmap="gray" if gray else None, interpolation="nearest", vmin=0, vmax=255)
        axis.set_title(caption, fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout(h_pad=1.5)  # room for three-line captions between rows
    return _save(figure, path)


def heatmap_overlay(image, heat, path: str | Path, *, caption: str = "") -> Path:
    """An image (uint8 [H, W, C]) with a heat map in 0..1 ([H, W], same size) over it, side by side with it."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.5))
    gray = image.ndim == 2 or image.shape[-1] == 1
    for axis in (left, right):
        axis.imshow(image.squeeze(), cmap="gray" if gray else None, interpolation="bilinear")
        axis.axis("off")
    right.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
    left.set_title("image", fontsize=9)
    right.set_title("Grad-CAM", fontsize=9)
    if caption:
        figure.suptitle(caption, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
