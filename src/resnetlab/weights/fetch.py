"""Fetching weight files once: torch.hub's downloader and cache, huggingface_hub for Hub files.

URL files (torchvision, the CIFAR ports) go to torch.hub's cache, `$TORCH_HOME/hub/checkpoints`
(`~/.cache/torch/hub/checkpoints`), under the publisher's file name: a file a torchvision user already
has is used as it is. `torch.hub.download_url_to_file` writes to a `.partial` file and moves it into
place only when the transfer is complete and its SHA-256 starts with the published prefix, so a broken
or corrupt download never reaches the cache. A file already there is checked too (its digest is cached
by size and mtime, so a 100 MB file is hashed once): one that fails is moved aside to `NAME.corrupt` and
fetched again.

RESNETLAB_MIRROR (a folder or URL, as for datasets) is tried before the official address;
RESNETLAB_OFFLINE=1 (or HF_HUB_OFFLINE=1) never touches the network. Without a file, the error names
the URL, the file name and the folder to put it in.

Hub files (timm) go through `huggingface_hub.hf_hub_download` into the Hugging Face cache timm uses
($HF_HOME/hub); its mirrors are set the Hub's way (HF_ENDPOINT). A Hub file stored by content is named
by its SHA-256 in the cache, and is checked against that name.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import torch

from ..data.verify import cached_digest
from ..errors import UserError
from .entry import WeightsEntry

TIMEOUT = 30  # seconds before a silent connection counts as failed (torch.hub's urlopen has none)
HF_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's Hub repositories: safetensors first
TRUE = ("1", "true", "yes", "on")


class WeightsError(UserError):
    """Pretrained weights could not be fetched, or the file is not the published one."""


def weights_dir() -> Path:
    """torch.hub's checkpoint cache: where torchvision keeps the same files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in TRUE for name in ("RESNETLAB_OFFLINE", "HF_HUB_OFFLINE"))


def cached_path(entry: WeightsEntry) -> Path | None:
    """Where `entry`'s file is, if it is already on this machine (without fetching or checking it)."""
    if entry.hf_hub_id:
        return _hub_cached(entry.hf_hub_id)
    path = weights_dir() / entry.filename
    return path if path.is_file() else None


def fetch(entry: WeightsEntry, *, progress: bool = True) -> Path:
    """The local path of `entry`'s file, checked against its published hash; fetched first if needed."""
    if entry.hf_hub_id:
        return fetch_hub_file(entry.hf_hub_id, (entry.hf_filename,) if entry.hf_filename else HF_FILES)[0]
    folder = weights_dir()
    path = folder / entry.filename
    if path.is_file():
        problem = _hash_problem(path, entry)
        if problem is None:
            return path
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)  # kept for inspection, never used
        print(f"warning: {path} {problem}; moved to {bad.name}, fetching it again")
    if offline():
        raise WeightsError(_missing(entry, folder, "offline (RESNETLAB_OFFLINE or HF_HUB_OFFLINE is set)"))
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in _urls(entry):
        try:
            with _timeout(TIMEOUT):
                torch.hub.download_url_to_file(url, str(path), hash_prefix=entry.hash_prefix, progress=progress)
        except RuntimeError as exc:  # torch.hub: 'invalid hash value (expected "...", got "...")'
            found = re.search(r'expected "(\w+)", got "(\w+)"', str(exc))
            failures.append(f"{url}: SHA-256 {found.group(2)} does not start with the published {found.group(1)}"
                            if found else f"{url}: {exc}")
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        problem = _hash_problem(path, entry)
        if problem is None:
            return path
        path.unlink()
        failures.append(f"{url}: {problem}")
    raise WeightsError(_missing(entry, folder, "no address gave the published file") + "\n  tried:\n    "
                       + "\n    ".join(failures))


def _urls(entry: WeightsEntry) -> list[str]:
    urls = [entry.url]
    mirror = os.environ.get("RESNETLAB_MIRROR")
    if mirror:
        base = mirror if "://" in mirror else Path(mirror).resolve().as_uri()
        urls.insert(0, base.rstrip("/") + "/" + entry.filename)
    return urls


@contextlib.contextmanager
def _timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _hash_problem(path: Path, entry: WeightsEntry) -> str | None:
    """None when the file has the published SHA-256 (or its published prefix); else what is wrong."""
    digest = cached_digest(path, "sha256")
    if entry.sha256 and digest != entry.sha256:
        return f"has SHA-256 {digest}, not the published {entry.sha256}"
    if entry.hash_prefix and not digest.startswith(entry.hash_prefix):
        return f"has SHA-256 {digest}, which does not start with the published {entry.hash_prefix}"
    return None


def _missing(entry: WeightsEntry, folder: Path, why: str) -> str:
    digest = entry.sha256 or f"{entry.hash_prefix}..."
    return (f"could not get the weights {entry.name} for {entry.arch}: {why}.\n"
            f"  Download {entry.url}\n  and put it in {folder} as {entry.filename} (SHA-256 {digest}),\n"
            f"  or set RESNETLAB_MIRROR to a folder or server that holds {entry.filename}")


# --- Hugging Face Hub --------------------------------------------------------------------------------

def _hub() -> object:
    try:
        import huggingface_hub
    except ImportError:
        raise WeightsError("weights from the Hugging Face Hub need huggingface_hub: pip install 'resnetlab[hub]' "
                           "(or pip install huggingface_hub)") from None
    return huggingface_hub


def _hub_folder(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def _hub_cached(repo_id: str) -> Path | None:
    with contextlib.suppress(ImportError):
        hub = _hub()
        for name in HF_FILES:
            found = hub.try_to_load_from_cache(repo_id, name)
            if isinstance(found, str):
                return Path(found)
    return None


def fetch_hub_file(repo_id: str, filenames: tuple[str, ...], *, required: bool = True) -> tuple[Path, str] | None:
    """The first of `filenames` the Hub repository has, as (local path, name); checked by its content hash.

    required=False returns None when the repository has none of them (an optional config.json).
    """
    hub = _hub()
    from huggingface_hub import errors

    url = f"https://huggingface.co/{repo_id}/resolve/main/{filenames[0]}"
    absent = []
    for name in filenames:
        try:
            path = Path(hub.hf_hub_download(repo_id, name, local_files_only=offline()))
        except errors.EntryNotFoundError:
            absent.append(name)
            continue
        except errors.LocalEntryNotFoundError:  # offline, or no network, and not in the cache
            if not required:
                return None
            absent.append(name)
            continue
        except errors.RepositoryNotFoundError:
            raise WeightsError(f"hf-hub:{repo_id}: no such repository on the Hugging Face Hub (or it is "
                               f"private: log in with `hf auth login`)") from None
        except (errors.HfHubHTTPError, OSError) as exc:
            raise WeightsError(f"could not fetch {url}: {exc}") from None
        _check_blob(path, repo_id, name)
        return path, name
    if not required:
        return None
    raise WeightsError(f"could not get {' or '.join(filenames)} of hf-hub:{repo_id}"
                       f"{' (offline)' if offline() else ''}.\n  Download {url}\n  or put the repository's "
                       f"snapshot in {_hub_folder(repo_id)} (the Hugging Face cache layout; `hf download {repo_id}` "
                       f"writes it), or set HF_ENDPOINT to a Hub mirror")


def _check_blob(path: Path, repo_id: str, name: str) -> None:
    """A Hub file stored by content (LFS) sits in the cache as blobs/SHA256; check its bytes against that."""
    blob = path.resolve()
    if re.fullmatch(r"[0-9a-f]{64}", blob.name):
        digest = cached_digest(blob, "sha256")
        if digest != blob.name:
            raise WeightsError(f"{path} (hf-hub:{repo_id}/{name}) has SHA-256 {digest}, not the {blob.name} the Hub "
                               f"published; delete {blob} and fetch it again")
