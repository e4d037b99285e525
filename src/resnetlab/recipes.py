"""Recipes: named sets of training settings shipped as YAML (`recipe=NAME`), or a YAML file of one's own.

A recipe's optional `models:` section holds settings that apply only to the named architectures (He
et al.'s warm-up for resnet110, say); config.py applies them in order: defaults, recipe, file, overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError, did_you_mean
from .yamlfile import read_settings_file

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
