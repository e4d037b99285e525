"""Crash-safe file writes: the one helper every writer of lasting files goes through."""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .errors import FileWriteError


def _io_failure(exc: BaseException) -> str | None:
    """The operating system's reason when `exc` is a failed write (disk full, ...), else None (a bug).

    safetensors reports I/O errors as SafetensorError("Error while serializing: I/O error: No space left on
    device (os error 28)"; older versions: 'IoError(Os { code: 28, ..., message: "No space left on device" })')
    rather than OSError.
    """
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    if type(exc).__name__ == "SafetensorError" and ("I/O error" in text or "IoError" in text):
        found = re.search(r'I/O error: (.+?) \(os error \d+\)|message: "([^"]+)"', text)
        return next(group for group in found.groups() if group) if found else text
    return None


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)`, fsync the file, then rename it to `path` (and fsync the folder)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private (0600); give the usual permissions
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        reason = _io_failure(exc)
        if reason is None:
            raise
        kept = "the previous file is unchanged" if path.exists() else "nothing was written there"
        raise FileWriteError(f"could not write {path}: {reason}; {kept}") from None
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename itself is still atomic
        return path
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[object]], delimiter: str = ",") -> Path:
    """Write a whole CSV file atomically: the run folder's metrics.csv and Keras' CSVLogger both go through here,
    so a crash mid-epoch leaves the previous epoch's file, never half a row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    return atomic_write(path, lambda tmp: tmp.write_text(text, newline="", encoding="utf-8"))
