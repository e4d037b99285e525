"""Evaluation reports: the numbers, the plots and the predictions of a model on a labelled set, as a
folder a person can open (report.html is self-contained) and a program can read (metrics.json, CSV)."""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..config import TtaMode
from ..info import ModelInfo
from . import plots
from .evaluation import ECE_BINS, EvalResult

PLOTS = {"confusion_matrix.png": "Confusion matrix (counts)",
         "confusion_matrix_normalized.png": "Confusion matrix (each row as shares of its class)",
         "reliability.png": "Reliability diagram", "per_class_accuracy.png": "Accuracy per class",
         "top_losses.png": "Top losses: the test images the model got most wrong"}


@dataclass
class EvaluationReport:
    """An EvalResult with what it was measured on; `write(folder)` produces the report folder.

    sources: per sample, the image file or "index N" of an in-memory set.
    image: returns sample i as uint8 [H, W, C] for the top-losses grid.
    """

    result: EvalResult
    info: ModelInfo
    model: str
    data: str
    split: str
    tta: str
    weights: str  # which weights were evaluated: "model" or "EMA"
    sources: list[str]
    image: Callable[[int], np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.result.accuracy

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "data": self.data, "split": self.split, "tta": self.tta,
                "weights": self.weights, **self.extra, **self.result.to_dict(),
                "most_confused": [{"true": t, "predicted": p, "images": n} for t, p, n in self.result.most_confused()]}

    def headline(self) -> list[str]:
        """What was measured, in words: the model, the data, how it ran (and what reduced precision cost)."""
        r, extra = self.result, self.extra
        lines = [f"model: {self.model} ({self.weights} weights)",
                 f"data:  {self.data}, {self.split} split, {r.num_samples} images, TTA {self.tta}",
                 f"run:   {extra.get('backend', '?')} {extra.get('precision', 'fp32')}"]
        if "accuracy_change" in extra:
            lines.append(f"{extra['precision']} accuracy {r.accuracy:.2%} against fp32 {extra['fp32_accuracy']:.2%}: "
                         f"{100 * extra['accuracy_change']:+.2f} points")
        return lines

    def tables(self, max_classes: int = 30) -> list[Any]:
        """The overall metrics and the per-class ones (the first `max_classes`) as rich Tables."""
        from rich.table import Table

        r = self.result
        overall = Table()
        overall.add_column("metric")
        overall.add_column("value", justify="right")
        top_k = f"top-{min(5, len(r.class_names))} accuracy"  # top-5 of fewer classes is top-K
        for name, value in (("accuracy", f"{r.accuracy:.2%}"), (top_k, f"{r.top5:.2%}"), ("loss", f"{r.loss:.4f}"),
                            ("calibration error (ECE)", f"{r.ece:.4f}"),
                            ("macro F1", f"{r.averages()['macro']['f1']:.4f}")):
            overall.add_row(name, value)
        per_class = Table(title="per class")
        for column in ("class", "accuracy", "precision", "F1", "images"):
            per_class.add_column(column, justify="left" if column == "class" else "right")
        for i, name in enumerate(r.class_names[:max_classes]):
            cells = [r.recall[i], r.precision[i], r.f1[i]]
            per_class.add_row(name, *("-" if c != c else f"{c:.2%}" for c in cells), str(int(r.support[i])))
        return [overall, per_class]

    def notes(self, max_classes: int = 30) -> list[str]:
        """What the tables leave out: classes past `max_classes`, the most confused pairs."""
        r, lines = self.result, []
        if len(r.class_names) > max_classes:
            lines.append(f"... {len(r.class_names) - max_classes} more classes in the report")
        confused = r.most_confused(5)
        if confused:
            lines.append("most confused: " + "; ".join(f"{t} -> {p} ({n})" for t, p, n in confused))
        return lines

    def write(self, folder: str | Path, top_losses: int = 16) -> Path:
        """Write metrics.json, predictions.csv, the plots, report.md and report.html into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        r = self.result
        summary = self.summary()
        atomic_write(folder / "metrics.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))
        self._write_predictions(folder / "predictions.csv")
        plots.confusion_matrix(r.confusion, r.class_names, folder / "confusion_matrix.png", normalize=False)
        plots.confusion_matrix(r.confusion, r.class_names, folder / "confusion_matrix_normalized.png", normalize=True)
        plots.reliability_diagram(r.probs, r.labels, folder / "reliability.png", bins=ECE_BINS, ece=r.ece)
        plots.per_class_accuracy(r.class_names, list(r.per_class_accuracy.values()), folder / "per_class_accuracy.png")
        worst = r.top_losses(top_losses)
        predicted = r.predictions  # a property: arg-max over all N x K probabilities, so once
        captions = [f"true: {r.class_names[r.labels[i]]}\npred: {r.class_names[predicted[i]]} "
                    f"({r.probs[i].max():.2f})\nloss {r.sample_losses[i]:.2f}" for i in worst]
        plots.image_grid([self.image(int(i)) for i in worst], captions, folder / "top_losses.png")
        markdown = self._markdown(summary)
        atomic_write(folder / "report.md", lambda tmp: tmp.write_text(markdown))
        page = self._html(summary, folder)
        atomic_write(folder / "report.html", lambda tmp: tmp.write_text(page))
        return folder

    def _write_predictions(self, path: Path) -> None:
        r = self.result
        k = min(5, len(r.class_names))
        order = np.argsort(-r.probs, axis=1)[:, :k]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["source", "true", "predicted", "probability", f"top{k}"])
                for i, source in enumerate(self.sources):
                    top = ";".join(f"{r.class_names[j]}:{r.probs[i, j]:.4f}" for j in order[i])
                    writer.writerow([source, r.class_names[r.labels[i]], r.class_names[order[i, 0]],
                                     f"{r.probs[i, order[i, 0]]:.4f}", top])

        atomic_write(path, write)

    def _tables(self, summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
        """(title, header, rows) of every table, shared by the Markdown and HTML versions."""
        r = self.result
        overview = [["top-1 accuracy", f"{r.accuracy:.2%}"], [f"top-{min(5, len(r.class_names))} accuracy",
                                                              f"{r.top5:.2%}"],
                    ["loss (cross-entropy)", f"{r.loss:.4f}"], ["expected calibration error", f"{r.ece:.4f}"],
                    ["images", f"{r.num_samples:,}"]]
        for kind in ("macro", "weighted"):
            values = summary[kind]
            overview.append([f"{kind} precision / recall / F1",
                             f"{values['precision']:.3f} / {values['recall']:.3f} / {values['f1']:.3f}"])

        def cell(value: float) -> str:
            return "-" if np.isnan(value) else f"{value:.3f}"

        per_class = [[name, cell(p), cell(rc), cell(f), str(int(n))]
                     for name, p, rc, f, n in zip(r.class_names, r.precision, r.recall, r.f1, r.support)]
        confused = [[t, p, str(n)] for t, p, n in r.most_confused()]
        return [("Summary", ["metric", "value"], overview),
                ("Most confused pairs", ["true class", "predicted as", "images"], confused),
                ("Per class", ["class", "precision", "recall", "F1", "support"], per_class)]

    def _heading(self) -> str:
        return (f"{self.model} on {self.data} ({self.split} split, {self.result.num_samples:,} images; "
                f"{self.weights} weights; TTA: {self.tta})")

    def _markdown(self, summary: dict[str, Any]) -> str:
        lines = ["# Evaluation report", "", self._heading(), ""]
        for title, header, rows in self._tables(summary):
            lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        for name, caption in PLOTS.items():
            lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
        lines.append("Per-image predictions: [predictions.csv](predictions.csv); all numbers: "
                     "[metrics.json](metrics.json).")
        return "\n".join(lines) + "\n"

    def _html(self, summary: dict[str, Any], folder: Path) -> str:
        parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>",
                 "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
                 "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;"
                 "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}",
                 "img{max-width:100%;border:1px solid #eee}</style></head><body>",
                 "<h1>Evaluation report</h1>", f"<p>{html.escape(self._heading())}</p>"]
        for title, header, rows in self._tables(summary):
            parts.append(f"<h2>{html.escape(title)}</h2><table><tr>"
                         + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
        for name, caption in PLOTS.items():
            encoded = base64.b64encode((folder / name).read_bytes()).decode()
            parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                         f"src='data:image/png;base64,{encoded}'>")
        parts.append("</body></html>")
        return "\n".join(parts)


def tensor_images(images: Any) -> Callable[[int], np.ndarray]:
    """Image i of a uint8 or 0..1 float tensor [N, C, H, W], as uint8 [H, W, C] (for the top-losses grid)."""

    def image(i: int) -> np.ndarray:
        pixels = images[i].permute(1, 2, 0).numpy()
        return pixels if pixels.dtype == np.uint8 else (pixels * 255).clip(0, 255).astype(np.uint8)

    return image


def evaluate(model: str | Path, data: str | None = None, *, split: str = "test", data_dir: str | None = None,
             tta: TtaMode = "none", batch_size: int = 256, device: str = "auto", workers: int | None = None,
             ema: bool = True, backend: str = "auto", precision: str = "fp32",
             weights: str | None = None, verify: bool | None = None, path_column: str | None = None,
             label_column: str | None = None) -> EvaluationReport:
    """Evaluate a model file (or an architecture with published `weights`) on a dataset split; return the
    report (`.write(folder)` for the folder).

    Args:
        data: dataset name or path; default the one the model was trained on (with its data_dir and
            validation split, so split="val" is that run's own validation set).
        tta: none | flip | flip+shift (test-time augmentation).
        backend: auto (the fastest fp32 CPU backend) | torch | onnxruntime | openvino.
        precision: fp32 | bf16 | int8 (int8 calibrates on the dataset's training images); reduced
            precision also evaluates fp32 and records both and the change in `extra`.
        ema: use a training checkpoint's EMA weights when it has them.
        weights: with `model` an architecture name: published weights ("DEFAULT", "CIFAR10_AKAMASTER", ...).
        verify: check a named dataset's files against their published checksums; default: as the model was
            trained (true for other data). False accepts a non-official copy.
        path_column, label_column: a CSV manifest's header names for its path and label columns; default:
            as the model was trained, on its own manifest.
    """
    from ..data.dataset import ImageFiles
    from ..data.images import read_for_model
    from ..data.sample import split_images
    from ..data.sources import load_dataset
    from ..deploy.inference import CALIBRATION_IMAGES, describe, runner
    from ..device import resolve_device
    from ..errors import ConfigError
    from ..runtime import Inference
    from ..weights.load import open_model
    from .evaluation import evaluate_models

    inference = Inference(tta=tta)  # a wrong tta fails before any loading
    device_ = resolve_device(device)
    network, info = open_model(model, weights, device=device_, ema=ema)
    trained_on = info.training.get("config", {}).get("data", {})
    recorded, recorded_dir = info.trained_data()  # typed words, or their absolute paths from another folder
    name = data or recorded
    if not name:
        raise ConfigError("the model file does not say which dataset it was trained on; give data=NAME")
    same = name in (trained_on.get("name"), recorded)
    dataset = load_dataset(name, data_dir=data_dir or (recorded_dir if same else None),
                           val_fraction=trained_on.get("val_fraction") if same else None,
                           img_size=info.input_size[1], channels=info.input_size[0], workers=workers,
                           path_column=path_column or (trained_on.get("path_column") if same else None),
                           label_column=label_column or (trained_on.get("label_column") if same else None),
                           verify=verify if verify is not None else
                           bool(trained_on.get("verify", True)) if same else True)  # as trained
    if dataset.class_names != info.class_names:
        raise ConfigError(f"{name} has classes {dataset.class_names[:5]}... but the model was trained on "
                          f"{info.class_names[:5]}...; evaluate it on data with the same classes")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got {split!r}")
    part = dataset.split(split)
    run = runner(network, info, device_, backend=backend, precision=precision,
                 calibration=lambda: split_images(dataset.train, info, CALIBRATION_IMAGES))
    models = [run]
    if precision != "fp32":  # reduced precision is never silent: measure what it costs against fp32
        models.append(runner(network, info, device_, backend="torch"))  # CPU: BN folded, within 1e-4 of eager
    results = evaluate_models(models, part, info, batch_size=batch_size, device=device_, workers=workers,
                              inference=inference)  # image files are decoded once for both
    result = results[0]
    extra: dict[str, Any] = {"backend": describe(run)[0], "precision": precision}
    if precision != "fp32":
        extra.update(fp32_accuracy=results[1].accuracy, accuracy_change=result.accuracy - results[1].accuracy)
    if isinstance(part, ImageFiles):
        sources = list(part.paths)

        def image(i: int) -> np.ndarray:
            return read_for_model(part.paths[i], info.input_size, info.interpolation, info.crop_pct).transpose(1, 2, 0)
    else:
        sources = [f"index {i}" for i in range(len(part))]
        image = tensor_images(part.images)
    weights = "EMA" if info.training.get("weights") == "ema" else "model"
    return EvaluationReport(result, info, str(model), str(name), split, tta, weights, sources, image, extra)
