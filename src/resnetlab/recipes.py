"""Recipes: named sets of training settings shipped as YAML (`recipe=NAME`), or a YAML file of one's own.

A recipe's optional `models:` section holds settings that apply only to the named architectures (He
et al.'s warm-up for resnet110, say); config.py applies them in order: defaults, recipe, file, overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, did_you_mean
from .yamlfile import read_settings_file

if TYPE_CHECKING:  # config.py imports this module
    from .config import TrainConfig

RECIPES_DIR = Path(__file__).parent / "recipes"


def recipe_names() -> list[str]:
    """The recipes that ship with resnetlab (`recipe=NAME`)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_settings(name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings, per-model settings) of a recipe: a shipped name or a path to a YAML file, as written."""
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        path = Path(name).expanduser()
        if not (path.suffix in (".yaml", ".yml") and path.is_file()):
            raise ConfigError(f"unknown recipe {name!r}{did_you_mean(name, recipe_names())}; shipped recipes: "
                              f"{', '.join(recipe_names())} (or give a .yaml path)")
    data = read_settings_file(path, "recipe")
    per_model = data.pop("models", None) or {}
    if not isinstance(per_model, dict):
        raise ConfigError(f"{path}: `models:` must map architecture names to settings")
    return data, {model: values or {} for model, values in per_model.items()}


def scale_to_epochs(train: TrainConfig, recipe_epochs: int, given: set[str]) -> None:
    """A recipe run for other than its own epochs keeps its schedule's shape: its warm-up and warm restarts, set in
    epochs, scale with the run's length (fast-cifar epochs=10 peaks at 23% and restarts at 31%, as its 36 epochs
    do), unless they were given too."""
    scale = train.epochs / recipe_epochs
    if scale != 1:
        if "train.warmup_epochs" not in given:
            train.warmup_epochs = round(train.warmup_epochs * scale, 4)
        if "train.restart_epochs" not in given:
            train.restart_epochs = [round(r * scale, 4) for r in train.restart_epochs]
