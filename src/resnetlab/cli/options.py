"""Options declared once: each from the library function or dataclass it feeds (name, type, default), parsed
from `key=value` and `--key value` alike, in any order (ultralytics' convention).

    resnetlab evaluate m.safetensors --backend torch data=digits split=val
    resnetlab evaluate data=digits --split val m.safetensors --backend=torch

A word is an option when it is `--key`, `--key=value`, `-k` or `key=value` with a known key; every other
word is positional (a model file, an image). `--flag` alone sets a true/false option, `--no-flag` clears
it, and `flag=false` works too. Values are converted with the library's own `coerce` (the same as the
training settings), so `batch_size=abc` is one error line; a misspelt key gets "did you mean".
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, did_you_mean

BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")


@dataclass(frozen=True)
class Option:
    name: str  # the key: `name=value`, `--name value`, `--name-with-dashes value`
    kind: Any = str  # a type hint `config.coerce` understands
    default: Any = None
    help: str = ""
    short: str | None = None  # e.g. -k
    minimum: int | float | None = None  # numbers: the smallest accepted value
    aliases: tuple[str, ...] = ()  # other keys for the same option (class= for class_name=)

    @property
    def flag(self) -> bool:
        """A true/false option: `--name` alone sets it."""
        return _plain(self.kind) is bool

    def convert(self, value: Any) -> Any:
        from ..config import coerce

        kind = self.kind
        if typing.get_origin(_plain(kind)) in (tuple, list) and isinstance(value, str) and "[" not in value:
            value = [part for part in value.split(",") if part.strip()]  # mean=0.5,0.5,0.5
        converted = coerce(self.name, value, kind)
        if self.minimum is not None and converted is not None and converted < self.minimum:
            raise ConfigError(f"{self.name} must be at least {self.minimum}, got {converted}")
        if typing.get_origin(_plain(kind)) is tuple and converted is not None:
            converted = tuple(converted)
        return converted


@dataclass(frozen=True)
class Positional:
    name: str
    help: str = ""
    many: bool = False  # any number of words (images), else at most one (a model file)
    required: bool = False  # the command cannot run without it (others may be given as key=value instead)


@dataclass
class Command:
    """One subcommand: its positionals and options, the function that runs it, and its help."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    positionals: list[Positional] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    free_settings: bool = False  # train, lr-find: other key=value words are training settings (checked there)

    def option(self, key: str) -> Option | None:
        key = key.replace("-", "_")
        return next((o for o in self.options if key == o.name or key in o.aliases), None)

    def keys(self) -> list[str]:
        return [o.name for o in self.options] + [p.name for p in self.positionals]

    def parse(self, words: Sequence[str]) -> argparse.Namespace:
        values: dict[str, Any] = {o.name: o.default for o in self.options}
        given: set[str] = set()
        plain: list[str] = []
        settings: list[str] = []
        words = list(words)
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if word in ("-h", "--help"):
                values["help"] = True
                continue
            if word.startswith("-") and len(word) > 1 and not _number(word):
                key, eq, text = word.lstrip("-").partition("=")
                option = next((o for o in self.options if o.short == word), None) or self.option(key)
                negated = option is None and key.replace("-", "_").startswith("no_") and \
                    (candidate := self.option(key[3:])) is not None and candidate.flag
                if negated:
                    option = candidate
                if option is None:
                    if self.free_settings and key.replace("-", "_") != "":
                        if eq:
                            settings.append(f"{key.replace('-', '_')}={text}")
                        elif i < len(words):  # --epochs 5: a training setting, checked by the config
                            settings.append(f"{key.replace('-', '_')}={words[i]}")
                            i += 1
                        else:
                            raise ConfigError(f"--{key} needs a value")
                        continue
                    raise self._unknown(key)
                if negated:
                    value: Any = False
                elif eq:
                    value = text
                elif option.flag:  # --json, or --ema false
                    value = True
                    if i < len(words) and words[i].lower() in BOOL_WORDS:
                        value = words[i]
                        i += 1
                else:
                    if i >= len(words):
                        raise ConfigError(f"--{option.name.replace('_', '-')} needs a value")
                    value = words[i]
                    i += 1
                values[option.name] = option.convert(value)
                given.add(option.name)
                continue
            key, eq, text = word.partition("=")
            key = key.strip().replace("-", "_")
            if eq and key.isidentifier() and not Path(word).exists():
                option = self.option(key)
                if option is not None:
                    values[option.name] = option.convert(text)
                    given.add(option.name)
                elif self.positionals and key == self.positionals[0].name:
                    plain.insert(0, text)  # model=FILE anywhere: still the first positional
                elif key in (p.name for p in self.positionals):
                    plain.append(text)
                elif self.free_settings:
                    settings.append(word)
                else:
                    raise self._unknown(key)
                continue
            plain.append(word)
        namespace = argparse.Namespace(command=self.name, func=self.run, given=given, settings=settings,
                                       help=values.pop("help", False), **values)
        self._positionals(namespace, plain)
        return namespace

    def _positionals(self, namespace: argparse.Namespace, words: list[str]) -> None:
        for index, positional in enumerate(self.positionals):
            if positional.many:
                setattr(namespace, positional.name, words)
                words = []
            else:
                setattr(namespace, positional.name, words.pop(0) if words else None)
            if positional.required and not getattr(namespace, positional.name):
                raise ConfigError(f"`resnetlab {self.name}` needs {positional.name.upper()}: {positional.help}")
            if index == len(self.positionals) - 1 and words:
                raise ConfigError(f"unexpected argument {words[0]!r}; `resnetlab {self.name} --help` lists what "
                                  f"{self.name} takes")
        if not self.positionals and words:
            raise ConfigError(f"unexpected argument {words[0]!r}; `resnetlab {self.name} --help` lists its options")

    def _unknown(self, key: str) -> ConfigError:
        key = key.replace("-", "_")
        known = self.keys()
        return ConfigError(f"unknown option {key!r}{did_you_mean(key, known)}; `resnetlab {self.name}` takes "
                           f"{', '.join(o.name for o in self.options) or 'no options'}")

    def usage(self) -> str:
        shown = " ".join(f"[{p.name.upper()} ...]" if p.many else f"[{p.name.upper()}]" for p in self.positionals)
        return f"usage: resnetlab {self.name} {shown} [key=value | --key value ...]".replace("  ", " ")


def from_signature(function: Callable[..., Any], helps: dict[str, str], *, rename: dict[str, str] | None = None,
                   minimum: dict[str, int | float] | None = None, short: dict[str, str] | None = None,
                   aliases: dict[str, tuple[str, ...]] | None = None) -> list[Option]:
    """Options for the parameters of `function` named in `helps` (name -> help): type and default from it.
    `rename` maps a parameter to its key on the command line (fmt -> format)."""
    rename, minimum, short, aliases = rename or {}, minimum or {}, short or {}, aliases or {}
    hints = typing.get_type_hints(function)
    parameters = inspect.signature(function).parameters
    options = []
    for name, help_text in helps.items():
        parameter = parameters[name]  # a KeyError here is a programming error: the library renamed it
        key = rename.get(name, name)
        default = None if parameter.default is inspect.Parameter.empty else parameter.default
        options.append(Option(key, hints.get(name, str), default, help_text, short=short.get(key),
                              minimum=minimum.get(key), aliases=aliases.get(key, ())))
    return options


def arguments_for(target: Callable[..., Any], args: argparse.Namespace,
                  rename: dict[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of `target` (a function or a dataclass) that the parsed `args` hold."""
    names = [f.name for f in dataclasses.fields(target)] if dataclasses.is_dataclass(target) else \
        [p.name for p in inspect.signature(target).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    rename = rename or {}
    if not dataclasses.is_dataclass(target):  # required parameters are the positionals, passed by the caller
        parameters = inspect.signature(target).parameters
        names = [n for n in names if parameters[n].default is not inspect.Parameter.empty]
    return {name: getattr(args, rename.get(name, name)) for name in names if hasattr(args, rename.get(name, name))}


def from_dataclass(cls: type, helps: dict[str, str]) -> list[Option]:
    """Options for every field of a settings dataclass: type and default from the field."""
    hints = typing.get_type_hints(cls)
    return [Option(f.name, hints[f.name], f.default, helps.get(f.name, "")) for f in dataclasses.fields(cls)]


def _plain(kind: Any) -> Any:
    """`X | None` -> X (the type a value given on the command line has)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return kind


def _number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
