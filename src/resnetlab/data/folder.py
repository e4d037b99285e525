"""Datasets of image files: a folder per class (optionally under train/ val/ test/), or a CSV manifest.

Every file is checked before training (see scan.py): with on_bad_image=error the run stops naming
every bad file; with on_bad_image=skip they are left out and reported.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch

from ..errors import DataError
from .dataset import MAX_CLASSES, DatasetSplits, ImageFiles, split_train_val
from .images import IMAGE_SUFFIXES
from .scan import ScanResult, pixel_stats, scan_files
from .stream import decode_files

SPLIT_FOLDERS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "testing")}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
SMALL_SIDE = 64  # images all this size or smaller, and all alike, are used at their own size
DEFAULT_SIZE, DEFAULT_CROP_PCT = 224, 0.875  # torchvision's ImageNet evaluation: resize 256, center 224

RawSplits = dict[str, tuple[list[str], list[int]]]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries, sorted; an unreadable folder is an error (its images would otherwise go missing unseen)."""
    try:
        with os.scandir(folder) as scan:  # DirEntry caches the file type: no stat per file on most filesystems
            return sorted(scan, key=lambda entry: entry.name)
    except PermissionError:
        raise DataError(f"{folder}: permission denied; the folder cannot be listed, so its images would be left "
                        f"out. Fix its permissions (chmod u+rx) or move it out of the dataset") from None
    except OSError as exc:  # ELOOP: a chain of links that never ends
        raise DataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None


def _images_under(folder: Path, ancestors: frozenset[tuple[int, int]] = frozenset()) -> list[str]:
    """Image files under `folder`, following linked folders; a link back to a folder above it is an error."""
    try:
        stat = folder.stat()
    except OSError as exc:
        raise DataError(f"{folder}: cannot open the folder ({exc.strerror or exc})") from None
    here = (stat.st_dev, stat.st_ino)
    if here in ancestors:
        raise DataError(f"{folder} links back to a folder that contains it (a symbolic link loop); remove the link")
    files = []
    for entry in _entries(folder):
        if entry.is_dir():  # follows links: a linked folder is read like a real one
            files += _images_under(Path(entry.path), ancestors | {here})
        elif entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith("."):
            files.append(entry.path)
    return files


def _class_folders(root: Path) -> list[Path]:
    return [Path(e.path) for e in _entries(root) if e.is_dir() and not e.name.startswith(".")]


def _read_class_folders(root: Path, class_names: list[str] | None) -> tuple[list[str], list[int], list[str]]:
    """Files and labels under root/<class>/ (searched recursively); returns (paths, labels, class names)."""
    folders = _class_folders(root)
    if not folders:
        loose = [e.name for e in _entries(root) if _is_image(Path(e.path))][:3]
        hint = f" (it holds loose images such as {', '.join(loose)})" if loose else ""
        raise DataError(f"{root} has no class folders{hint}; expected {root}/<class name>/<image files>")
    if class_names is None:
        class_names = [f.name for f in folders]
    unknown = [f.name for f in folders if f.name not in class_names]
    if unknown:
        raise DataError(f"{root} has class folder(s) {', '.join(unknown)} that the training split lacks")
    paths, labels, empty = [], [], []
    for folder in folders:
        files = sorted(_images_under(folder))
        if not files:
            empty.append(folder.name)
        paths += files
        labels += [class_names.index(folder.name)] * len(files)
    if empty:
        raise DataError(f"{root}: class folder(s) with no images: {', '.join(empty)} (image suffixes: "
                        f"{', '.join(IMAGE_SUFFIXES)}); add images or remove the folder(s)")
    return paths, labels, class_names


def discover_folder(root: Path) -> tuple[RawSplits, list[str]]:
    """Read root/<class>/..., or root/train|val|test/<class>/... when a train folder exists."""
    found = {split: next((root / n for n in names if (root / n).is_dir()), None)
             for split, names in SPLIT_FOLDERS.items()}
    if found["train"] is None:
        paths, labels, names = _read_class_folders(root, None)
        return {"train": (paths, labels)}, names
    paths, labels, names = _read_class_folders(found["train"], None)
    splits = {"train": (paths, labels)}
    for split in ("val", "test"):
        if found[split] is not None:
            split_paths, split_labels, _ = _read_class_folders(found[split], names)
            splits[split] = (split_paths, split_labels)
    return splits, names


def _csv_rows(path: Path) -> list[list[str]]:
    """The non-blank rows of a CSV file, or one DataError line naming the file and what is wrong."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            return [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start:,} is 0x{exc.object[exc.start]:02x}); save it "
                        f"as UTF-8 (Excel: \"CSV UTF-8\")") from None
    except csv.Error as exc:  # a NUL byte, a field over csv's size limit
        raise DataError(f"{path} is not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path} could not be read ({exc.strerror or exc})") from None


def _label_indices(path: Path, entries: list[tuple[str, str, str, int]]) -> tuple[list[int], list[str]]:
    """Integer labels as given (bounded by MAX_CLASSES), else class names sorted; returns (indices, names)."""
    raw_labels = [label for _, label, _, _ in entries]
    if not all(label.isascii() and label.lstrip("-").isdigit() for label in raw_labels):
        class_names = sorted(set(raw_labels))
        lookup = {name: i for i, name in enumerate(class_names)}
        return [lookup[label] for label in raw_labels], class_names
    indices = [int(label) for label in raw_labels]
    for index, (_, _, _, number) in zip(indices, entries):
        if index < 0 or index >= MAX_CLASSES:
            raise DataError(f"{path}, line {number}: label {index} is not a class index 0..{MAX_CLASSES - 1:,}; "
                            f"integer labels number the classes from 0 (or give class names)")
    return indices, [str(i) for i in range(max(indices) + 1)]


# header names a manifest's columns may have (case-insensitive): pandas/Kaggle conventions
PATH_COLUMNS = ("path", "file", "filename", "file_name", "filepath", "image", "image_path", "img")
LABEL_COLUMNS = ("label", "class", "class_name", "target", "y", "category")


def _looks_like_header(path: Path, rows: list[list[str]]) -> bool:
    """A first row whose path is no file while the next row's is: column names under another name."""
    if len(rows) < 2 or not rows[0] or not rows[1]:
        return False

    def exists(cell: str) -> bool:
        file = Path(cell.strip())
        return (file if file.is_absolute() else path.parent / file).is_file()

    return not exists(rows[0][0]) and exists(rows[1][0])


def _named_column(path: Path, header: list[str], row: list[str], setting: str, name: str) -> int:
    """The index of the column a path_column=/label_column= setting names (case-insensitive)."""
    if name.strip().lower() in header:
        return header.index(name.strip().lower())
    raise DataError(f"{path}: {setting}={name} names no column of its first row {','.join(row)!r}; "
                    f"give one of {', '.join(c.strip() for c in row)}")


def read_manifest(path: Path, *, path_column: str | None = None,
                  label_column: str | None = None) -> tuple[RawSplits, list[str]]:
    """Read a CSV of `path,label[,split]` rows (header optional); paths are relative to the CSV's folder.

    path_column, label_column: the header's names for the two columns, when they are not among the common
    ones (PATH_COLUMNS, LABEL_COLUMNS); naming either says the first row is a header.
    """
    rows = _csv_rows(path)
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    first_line = 1
    path_col, label_col, split_col = 0, 1, 2
    paths_named = [i for i, h in enumerate(header) if h in PATH_COLUMNS]
    labels_named = [i for i, h in enumerate(header) if h in LABEL_COLUMNS]
    if path_column:
        paths_named = [_named_column(path, header, rows[0], "path_column", path_column)] if rows else []
    if label_column:
        labels_named = [_named_column(path, header, rows[0], "label_column", label_column)] if rows else []
    if labels_named or paths_named or _looks_like_header(path, rows):  # a header row names the columns
        if not paths_named or not labels_named:
            missing = "path" if not paths_named else "label"
            choices = PATH_COLUMNS if not paths_named else LABEL_COLUMNS
            raise DataError(f"{path}: the first row {','.join(rows[0])!r} looks like a header, but none of its "
                            f"columns is a {missing} column (named {', '.join(choices)}); rename it, or "
                            f"name it with {missing}_column=")
        path_col, label_col = paths_named[0], labels_named[0]
        if path_col == label_col:
            raise DataError(f"{path}: column {rows[0][path_col].strip()!r} cannot hold both the paths and the "
                            f"labels; set path_column= and label_column= to two different columns")
        split_col = header.index("split") if "split" in header else None
        rows, first_line = rows[1:], 2
    if not rows:
        raise DataError(f"{path} lists no images; expected rows of path,label[,split]")
    entries = []
    for number, row in enumerate(rows, start=first_line):
        if len(row) <= max(path_col, label_col) or not row[label_col].strip():
            raise DataError(f"{path}, line {number}: expected path,label[,split], got {','.join(row)!r}")
        given = row[split_col].strip().lower() if split_col is not None and len(row) > split_col else "train"
        split = next((s for s, aliases in SPLIT_FOLDERS.items() if given in aliases), None)
        if split is None:
            raise DataError(f"{path}, line {number}: split must be train, val or test, got {given!r}")
        file = Path(row[path_col].strip())
        entries.append((str(file if file.is_absolute() else path.parent / file), row[label_col].strip(), split,
                        number))
    indices, class_names = _label_indices(path, entries)
    splits: RawSplits = {}
    for (file, _, split, _), index in zip(entries, indices):
        splits.setdefault(split, ([], []))
        splits[split][0].append(file)
        splits[split][1].append(index)
    if "train" not in splits:
        raise DataError(f"{path} has no training rows (split column all val/test)")
    return splits, class_names


def read_files_source(source: Path, *, path_column: str | None = None,
                      label_column: str | None = None) -> tuple[RawSplits, list[str]]:
    """The files and class names of an image folder, or of a .csv manifest (whose columns may be named)."""
    if source.suffix.lower() == ".csv":
        return read_manifest(source, path_column=path_column, label_column=label_column)
    check_columns_setting(str(source), path_column, label_column)
    return discover_folder(source)


def check_columns_setting(source: str, path_column: str | None, label_column: str | None) -> None:
    """path_column=/label_column= only mean something for a .csv manifest: say so rather than ignore them."""
    if (path_column or label_column) and not source.lower().endswith(".csv"):
        raise DataError(f"path_column= and label_column= name a .csv manifest's columns, and {source} is no "
                        f".csv file; leave them out")


def _report_bad(source: Path, bad: list[ScanResult]) -> DataError:
    lines = [f"  {r.path}: {r.error}" for r in bad]
    return DataError(f"{len(bad)} bad image file(s) in {source}; fix or remove them, or train with "
                     f"on_bad_image=skip to leave them out:\n" + "\n".join(lines))


def choose_channels(results: list[ScanResult]) -> int:
    """1 when every usable image is stored as grayscale, else 3."""
    good = [r for r in results if r.ok]
    return 1 if good and all(r.mode in GRAY_MODES for r in good) else 3


def choose_size(results: list[ScanResult], img_size: int | None) -> tuple[int, float]:
    """(input side, crop_pct): small same-size images keep their size; otherwise 224 with a 0.875 crop."""
    if img_size is not None:
        return img_size, (1.0 if img_size <= SMALL_SIDE else DEFAULT_CROP_PCT)
    sizes = {(r.width, r.height) for r in results if r.ok}
    if len(sizes) == 1:
        width, height = sizes.pop()
        if width == height and width <= SMALL_SIDE:
            return width, 1.0
    return DEFAULT_SIZE, DEFAULT_CROP_PCT


def load_files_dataset(source: str | Path, *, val_fraction: float | None = None, img_size: int | None = None,
                       channels: int | None = None, on_bad_image: str = "error", in_memory: bool = False,
                       workers: int | None = None, path_column: str | None = None,
                       label_column: str | None = None) -> DatasetSplits:
    """Load a folder or CSV manifest; check every file first; split off validation if none is given."""
    source = Path(source).expanduser()
    splits, class_names = read_files_source(source, path_column=path_column, label_column=label_column)
    if len(class_names) < 2:
        raise DataError(f"{source} has a single class ({class_names[0]!r}); a classifier needs at least two")
    all_paths = [p for paths, _ in splits.values() for p in paths]
    results = scan_files(all_paths, root=source, workers=workers)
    bad = [r for r in results if not r.ok]
    if bad and on_bad_image == "error":
        raise _report_bad(source, bad)
    bad_paths = {r.path for r in bad}
    files = {}
    for split, (paths, labels) in splits.items():
        keep = [i for i, p in enumerate(paths) if p not in bad_paths]
        files[split] = ImageFiles([paths[i] for i in keep], torch.tensor([labels[i] for i in keep], dtype=torch.long))
    present = set(files["train"].labels.tolist())
    missing = [name for i, name in enumerate(class_names) if i not in present]
    if missing:
        raise DataError(f"{source}: no usable training images for class(es) {', '.join(missing)}")
    if "val" not in files:
        files["train"], val = split_train_val(files["train"], val_fraction)
        if val is not None:
            files["val"] = val

    good = [r for r in results if r.ok]
    channels = channels or choose_channels(good)
    side, crop_pct = choose_size(results, img_size)
    train_set = set(files["train"].paths)
    mean, std = pixel_stats([r for r in good if r.path in train_set], channels)
    input_size = (channels, side, side)
    splits_out = {s: files.get(s) for s in ("train", "val", "test")}
    if in_memory:  # decode once at the input size; then augment whole batches like CIFAR
        splits_out = {s: decode_files(f, input_size, crop_pct=crop_pct, workers=workers) if f is not None else None
                      for s, f in splits_out.items()}
    return DatasetSplits(
        name=str(source), train=splits_out["train"], val=splits_out["val"], test=splits_out["test"],
        class_names=class_names, mean=mean, std=std, crop_padding=max(1, side // 8) if in_memory else 0,
        pad_mode="reflect", flip=True, interpolation="bilinear", crop_pct=crop_pct, file_input_size=input_size,
        skipped=[(r.path, r.error) for r in bad], notes={"source": str(source)},
    )
