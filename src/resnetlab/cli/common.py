"""What every subcommand shares: the console, option words (`key=value` beside `--key value`), JSON output."""

from __future__ import annotations

import argparse
import json
import math

from rich.console import Console
from rich.table import Table

from ..errors import ConfigError

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


def require_model(args: argparse.Namespace) -> None:
    if not args.model:
        raise ConfigError(f"give a model file, or model=ARCH weights=NAME (`resnetlab weights` lists the names); "
                          f"`resnetlab {args.command} --help` shows the options")


def require_images(args: argparse.Namespace, verb: str) -> list[str]:
    require_model(args)
    if not args.images:
        raise ConfigError(f"give the image files, folders or globs to {verb}")
    return args.images


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
