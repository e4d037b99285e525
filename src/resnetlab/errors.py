"""User-facing errors: the CLI prints these as one actionable message instead of a traceback.

They subclass ValueError so Python callers can catch them the usual way (Keras raises ValueError for
bad shapes and labels, and so do we).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class UserError(ValueError):
    """Something the user can fix: a bad argument, file or setting. The message says how."""


class ConfigError(UserError):
    """A setting is unknown, mistyped or out of range."""


class DataError(UserError):
    """A dataset, array or image file cannot be used as given."""


class ModelFileError(UserError):
    """A file is not a resnetlab model file, or its tensors do not match its architecture."""


class FileWriteError(UserError, OSError):
    """A file could not be written (disk full, no permission, read-only folder); the previous one is intact.

    Also an OSError, so code that tolerates an unwritable cache (`except OSError`) keeps doing so."""


def natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" naming the closest choice (ties: up to three, in natural order), or "".

    A choice that is a prefix of the word, or starts with it (`lr` for `lr_rate`, `resnet50` for
    `resnet5`), beats one that merely shares letters; otherwise difflib's similarity decides.
    """
    choices = set(choices)
    ratio = {c: difflib.SequenceMatcher(None, word, c).ratio() for c in choices}
    prefixed = [c for c in choices if min(len(c), len(word)) >= 2 and (word.startswith(c) or c.startswith(word))]
    pool = prefixed or [c for c in choices if ratio[c] >= 0.6]
    if not pool:
        return ""
    best = max(ratio[c] for c in pool)
    closest = sorted((c for c in pool if ratio[c] == best), key=natural_key)[:3]
    return "; did you mean " + " or ".join(repr(c) for c in closest) + "?"
