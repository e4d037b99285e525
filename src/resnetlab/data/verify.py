"""Checking official dataset files against their published checksums, hashing each version of a file once.

Every official file a named dataset reads is checked, wherever it was found: downloaded, extracted
from an archive, or placed in `data_dir` by hand (a Fashion-MNIST folder given as MNIST is caught
here). A file's digest is cached in the resnetlab cache folder by (resolved path, size, mtime), so a
180 MB CIFAR-10 is hashed on its first use only, also when `data_dir` is read-only (a shared copy).
`verify=false` skips the check for a copy that is not the official bytes on purpose (the JPEG
re-encoded CIFAR-10); the run then says so.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..atomic import atomic_write
from ..cache import cache_dir
from ..errors import DataError
from .download import file_digest

ALGORITHMS = {32: "md5", 40: "sha1"}  # hex length of a published digest -> its algorithm
CACHE_VERSION = 1


def _cache_file() -> Path:
    return cache_dir() / "verified.json"


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text())
        return data["files"] if data.get("version") == CACHE_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # no cache yet, or a damaged one: hash again


def cached_digest(path: Path, algorithm: str) -> str:
    """The digest of `path`, from the cache when the file's size and mtime are unchanged since it was hashed."""
    stat = path.stat()
    key, stamp = str(path.resolve()), [stat.st_size, stat.st_mtime_ns]
    files = _read_cache()
    entry = files.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and algorithm in entry.get("digests", {}):
        return entry["digests"][algorithm]
    digest = file_digest(path, algorithm)
    digests = entry["digests"] if isinstance(entry, dict) and entry.get("stamp") == stamp else {}
    files[key] = {"stamp": stamp, "digests": {**digests, algorithm: digest}}
    payload = json.dumps({"version": CACHE_VERSION, "files": files})
    with contextlib.suppress(OSError):  # a read-only cache only costs hashing again next time
        atomic_write(_cache_file(), lambda tmp: tmp.write_text(payload))
    return digest


def verify_file(path: Path, expected: str, *, what: str, known: dict[str, str] | None = None) -> None:
    """Raise DataError unless `path` has the published digest `expected` (MD5 or SHA-1, told by its length).

    Args:
        what: the official file it should be, for the message ("MNIST train-images-idx3-ubyte.gz").
        known: digest -> description of other official files, to say what the file is instead.
    """
    algorithm = ALGORITHMS[len(expected)]
    found = cached_digest(path, algorithm)
    if found == expected.lower():
        return
    instead = (known or {}).get(found)
    identity = f"; it is {instead}" if instead else ""
    raise DataError(f"{path} is not the official {what}: its {algorithm.upper()} is {found}, the published one is "
                    f"{expected}{identity}. Use the official file (delete this one to download it again), or set "
                    f"verify=false to accept a non-official copy on purpose (e.g. a re-encoded CIFAR-10)")

