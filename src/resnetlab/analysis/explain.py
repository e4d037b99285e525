"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class is.

The class score's gradient with respect to the last feature map (`forward_features`, the output of
the last residual stage for every registered model) is averaged over space to weight each channel;
the ReLU of the weighted sum, upsampled to the image, is the heat map.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import BadImageError
from ..deploy.predict import Predictor
from ..errors import ConfigError, did_you_mean
from .plots import heatmap_overlay


def grad_cam(model: nn.Module, images: torch.Tensor, classes: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Heat maps [N, H, W] in 0..1 for normalized images float [N, C, H, W]; and the logits [N, K].

    `classes` [N] chooses the class to explain per image; default the predicted one.
    """
    model.eval()
    with torch.enable_grad():
        features = model.forward_features(images)
        logits = model.forward_head(features)
        targets = logits.argmax(dim=1) if classes is None else classes
        score = logits.gather(1, targets[:, None]).sum()
        grads = torch.autograd.grad(score, features)[0]
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)
    return cam / peak[:, None, None], logits.detach()


@dataclass
class Explanation:
    source: str
    label: str = ""  # the explained class
    prob: float = 0.0  # its probability
    predicted: str = ""  # the top-1 class
    heat_path: Path | None = None  # the PNG written
    error: str | None = None


def explain_files(predictor: Predictor, paths: list[str | Path], out_dir: str | Path, *,
                  class_name: str | None = None) -> list[Explanation]:
    """Write `<out_dir>/<folder>/<file stem>_gradcam.png` for each image; unreadable files get `error` set.

    `<folder>` is the image's folder relative to the common folder of all `paths`, so `a/x.jpg` and `b/x.jpg`
    get `out_dir/a/x_gradcam.png` and `out_dir/b/x_gradcam.png` (images of one folder: straight in `out_dir`);
    `x.jpg` beside `x.png` gets `x_png_gradcam.png`.
    """
    info = predictor.info
    target = None
    if class_name is not None:
        if class_name not in info.class_names:
            raise ConfigError(f"unknown class {class_name!r}{did_you_mean(class_name, info.class_names)}; the "
                              f"model's classes: {', '.join(info.class_names[:20])}")
        target = info.class_names.index(class_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = _relative_folders(paths)
    results, written = [], set()
    for path in paths:
        try:
            pixels = predictor.read_file(path)  # uint8 [C, H, W], resized as the model expects
        except BadImageError as exc:
            results.append(Explanation(str(path), error=str(exc)))
            continue
        batch = predictor.normalized(torch.from_numpy(pixels[None].copy()))
        classes = None if target is None else torch.tensor([target], device=batch.device)
        heat, logits = grad_cam(predictor.model, batch, classes)
        probs = torch.softmax(logits.float(), dim=1)[0]
        chosen = int(probs.argmax()) if target is None else target
        label = info.class_names[chosen]
        out = out_dir / folders.get(str(path), Path()) / f"{Path(path).stem}_gradcam.png"
        if out in written:  # x.jpg and x.png in one folder
            out = out.with_name(f"{Path(path).stem}_{Path(path).suffix.lstrip('.')}_gradcam.png")
        written.add(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        caption = f"{Path(path).name}: {label} ({probs[chosen]:.1%})"
        heatmap_overlay(pixels.transpose(1, 2, 0), heat[0].cpu().numpy(), out, caption=caption)
        results.append(Explanation(str(path), label, float(probs[chosen]), info.class_names[int(probs.argmax())], out))
    return results


def _relative_folders(paths: list[str | Path]) -> dict[str, Path]:
    """Each file's folder relative to the deepest folder holding them all (symbolic links kept as given).

    Names that are no file (a typo, reported as an error) are left out: they do not move the others' maps."""
    folders = {str(path): Path(os.path.abspath(Path(path).expanduser())).parent for path in paths
               if Path(path).expanduser().is_file()}
    try:
        root = Path(os.path.commonpath(list(folders.values()))) if folders else Path()
    except ValueError:  # Windows: no common folder across drives
        return {path: Path(folder.name) for path, folder in folders.items()}
    return {path: folder.relative_to(root) for path, folder in folders.items()}


def heat_centre_of_mass(heat: np.ndarray) -> tuple[float, float]:
    """(row, column) of a heat map's centre of mass, in pixels (for checks and summaries)."""
    total = heat.sum()
    rows, cols = np.indices(heat.shape)
    return float((rows * heat).sum() / total), float((cols * heat).sum() / total)
