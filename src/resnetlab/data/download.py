"""Fetching dataset files: official URLs, published checksums, a cache folder, atomic writes.

Files go to the cache folder (cache.py) unless `data_dir=` names one. RESNETLAB_MIRROR names a
folder or URL tried before the official addresses (an organization's mirror, or `file:///...` in
tests). A file is used only after its checksum matches; with no network the error lists exactly which
files to place where.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write
from ..errors import DataError

CHUNK = 1 << 20  # bytes per read while hashing or downloading
TIMEOUT = 30  # seconds before a silent connection counts as failed


@dataclass(frozen=True)
class Resource:
    """One downloadable file: its name, where it is published, and its published MD5."""

    filename: str
    urls: tuple[str, ...]  # official address first, then mirrors
    md5: str


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (read in CHUNK-sized blocks: constant memory)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _candidate_urls(resource: Resource) -> list[str]:
    urls = list(resource.urls)
    mirror = os.environ.get("RESNETLAB_MIRROR")
    if mirror:
        base = mirror if "://" in mirror else Path(mirror).resolve().as_uri()
        urls.insert(0, base.rstrip("/") + "/" + resource.filename)
    return urls


def _fetch(url: str, target: Path) -> None:
    """Copy `url` (http(s) or file://) to `target` atomically: a broken transfer leaves nothing behind."""

    def write(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)

    atomic_write(target, write)


def ensure_resource(resource: Resource, folder: Path, *, download: bool = True, verify: bool = True) -> Path:
    """Return the path of `resource` in `folder`, downloading and verifying it if needed.

    verify=False accepts a file already in `folder` unchecked; a download is always checked.
    """
    path = folder / resource.filename
    if path.is_file():
        if not verify or file_digest(path) == resource.md5:
            return path
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)  # keep it for inspection, never use it
        if not download:
            raise DataError(f"{path} does not match its published MD5 {resource.md5} (moved to {bad.name}); "
                            f"download it again from {resource.urls[0]}")
    if not download:
        raise DataError(missing_message([resource], folder))
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in _candidate_urls(resource):
        try:
            _fetch(url, path)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        digest = file_digest(path)
        if digest == resource.md5:
            return path
        path.unlink()
        failures.append(f"{url}: MD5 {digest} instead of the published {resource.md5}")
    raise DataError(missing_message([resource], folder) + "\n  tried:\n    " + "\n    ".join(failures))


def missing_message(resources: Sequence[Resource], folder: Path) -> str:
    lines = [f"could not get the dataset files; place them in {folder}:"]
    for resource in resources:
        lines.append(f"  {resource.filename}  (MD5 {resource.md5}; from {resource.urls[0]})")
    lines.append("or set data_dir= to a folder that already holds them")
    return "\n".join(lines)


def extract_tar(archive: Path, folder: Path) -> None:
    """Extract a .tar.gz into `folder`, refusing members that would land outside it."""
    root = folder.resolve()
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if not (target == root or root in target.parents) or member.issym() or member.islnk():
                raise DataError(f"{archive} contains an unsafe member {member.name!r}; delete the archive and "
                                f"download it again")
        tar.extractall(root, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(root)
