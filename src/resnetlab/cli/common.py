"""What every subcommand shares: the console, option words (`key=value` beside `--key value`), JSON output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from ..config import ALIASES, sections
from ..errors import ConfigError

console = Console()


def print_settings_help() -> None:
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


def describe_settings() -> list[tuple[str, str, str, str]]:
    """(key, type, default, comment) for every setting, for `--help`; comments come from this file."""
    import inspect

    rows = []
    for section, cls in sections().items():
        source = inspect.getsource(cls)
        comments = {}
        for line in source.splitlines():
            name, _, rest = line.strip().partition(":")
            if "#" in rest:
                comments[name] = rest.split("#", 1)[1].strip()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            key = {v: k for k, v in ALIASES.items()}.get(f"{section}.{f.name}", f.name)
            rows.append((key, _type_name(hints[f.name]), repr(default), comments.get(f.name, "")))
    return rows


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "|".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args).replace("NoneType", "none")
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}"
    return getattr(hint, "__name__", str(hint))
