"""What every subcommand shares: the console, option words (`key=value` beside `--key value`), JSON output."""

from __future__ import annotations

import argparse
import json
import math

from rich.console import Console
from rich.table import Table

from ..errors import ConfigError, did_you_mean

console = Console()


def print_settings_help() -> None:
    from ..config import describe_settings

    table = Table(title="resnetlab train settings (key=value)", show_lines=False)
    for column in ("key", "type", "default", "meaning"):
        table.add_column(column)
    for row in describe_settings():
        table.add_row(*row)
    console.print(table)
    console.print("Examples: resnetlab train model=resnet20 epochs=40 lr=0.05\n"
                  "          resnetlab train config=my.yaml batch_size=64")


def count_option(key: str, value: object, minimum: int) -> int:
    """An integer option from a flag or a key=value word, at least `minimum`."""
    from ..config import coerce

    number = coerce(key, value, int)
    if number < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {number}")
    return number


def key_values(words: list[str], allowed: dict[str, str], namespace: argparse.Namespace) -> None:
    """Apply `key=value` words to `namespace` (the CLI takes both `--data x` and `data=x`)."""
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ConfigError(f"unexpected argument {word!r}")
        key = key.strip().replace("-", "_")
        if key not in allowed:
            raise ConfigError(f"unknown option {key!r}{did_you_mean(key, allowed)}; options: {', '.join(allowed)}")
        setattr(namespace, allowed[key], value)


def split_model(args: argparse.Namespace, words: list[str]) -> list[str]:
    """Set args.model and args.weights from `model=`/`weights=` words (anywhere) or the first plain word (a
    model file); return the other words. `predict cat.jpg model=resnet50 weights=DEFAULT` and
    `predict run/best.safetensors cat.jpg` both work."""
    rest, model = [], None
    for word in words:
        key, sep, value = word.partition("=")
        key = key.strip().replace("-", "_")
        if sep and key == "model":
            model = value
        elif sep and key == "weights":
            args.weights = value
        else:
            rest.append(word)
    if model is None:
        plain = [w for w in rest if "=" not in w]
        if not plain:
            raise ConfigError("give a model file, or model=ARCH weights=NAME (`resnetlab weights` lists the names)")
        model = plain[0]
        rest.remove(model)
    args.model = model
    return rest


def json_text(value: object, **options: object) -> str:
    """JSON that every parser reads: NaN and inf (which json.dumps writes as bare NaN/Infinity) become null."""

    def finite(item: object) -> object:
        if isinstance(item, float):
            return item if math.isfinite(item) else None
        if isinstance(item, dict):
            return {key: finite(v) for key, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [finite(v) for v in item]
        return item

    return json.dumps(finite(value), allow_nan=False, **options)
