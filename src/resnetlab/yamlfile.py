"""Reading YAML settings with bounds: file size, alias expansion, UTF-8; every failure is one ConfigError line.

PyYAML's safe loader runs no code, but a 338-byte "billion laughs" file (aliases of aliases) expands to
10^9 values the moment anything walks it (a repr in an error message ran to 3 GB). Here the expanded
size of the node graph is counted before anything is constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_YAML_BYTES = 1 << 20  # 1 MiB; the shipped recipes are under 2 KB, a saved config.yaml about 3 KB
MAX_YAML_VALUES = 100_000  # values after expanding every alias; a config holds about 100


class _ExpansionError(Exception):
    """The document would expand past MAX_YAML_VALUES values, or an alias refers to itself."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values `node` stands for once aliases are expanded; memoized, so shared subtrees cost one visit."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _ExpansionError("an alias refers to a node that contains it")
    open_nodes.add(key)
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_YAML_VALUES:
            raise _ExpansionError(f"its aliases expand to more than {MAX_YAML_VALUES:,} values (a 'billion laughs' "
                                  f"file?)")
    open_nodes.discard(key)
    sizes[key] = total
    return total


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that measures the composed document before constructing any Python object from it."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node


def load_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text from `source` (a file name, or "the command line") within the bounds above."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: no Python objects
    except _ExpansionError as exc:
        raise ConfigError(f"{source} was not loaded: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source} was not loaded: it nests lists or mappings too deeply") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None


def load_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file of at most MAX_YAML_BYTES bytes of UTF-8 text."""
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path} is {size:,} bytes; a settings file may be at most {MAX_YAML_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path} could not be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # -sig: a byte-order mark from a Windows editor is fine
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); save it as "
                          f"UTF-8") from None
    return load_yaml_text(text, str(path))


def read_settings_file(path: Path, what: str) -> dict[str, Any]:
    """A YAML file of settings (a mapping), bounded as `load_yaml_file`; `what` names it in errors."""
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    data = load_yaml_file(path) or {}  # bounded: size, alias expansion, UTF-8
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, got {type(data).__name__}")
    return data
