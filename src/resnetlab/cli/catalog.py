"""`resnetlab models | weights | datasets | data | info`: what is available, and what a file or folder holds."""

from __future__ import annotations

import argparse

from rich.table import Table

from ..errors import ConfigError, did_you_mean
from .common import console, json_text
from .options import arguments_for


def cmd_models(args: argparse.Namespace) -> int:
    from ..models.summary import model_stats
    from ..registry import get_model_entry, list_models

    families = sorted({get_model_entry(n).family for n in list_models()})
    if args.family is not None and args.family not in families:
        raise ConfigError(f"unknown family {args.family!r}{did_you_mean(args.family, families)}; families: "
                          f"{', '.join(families)}")
    names = list_models(args.pattern or "*", family=args.family)
    if not names:
        raise ConfigError(f"no model matches {args.pattern!r} (`resnetlab models` lists all)")
    table = Table(title="resnetlab models")
    for column, justify in (("name", "left"), ("family", "left"), ("params", "right"), ("input", "right"),
                            ("GMACs", "right"), ("GFLOPs", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    with_paper = console.width >= 110  # the reference only where it fits beside the numbers
    if with_paper:
        table.add_column("paper")
    for name in names:
        stats = model_stats(name, flops=not args.no_flops)
        c, h, w = stats.input_size
        macs = "" if stats.flops is None else f"{stats.flops / 2e9:.3f}"
        flops = "" if stats.flops is None else f"{stats.flops / 1e9:.3f}"
        row = [name, stats.family, f"{stats.params:,}", f"{c}x{h}x{w}", macs, flops]
        table.add_row(*row, *([stats.paper] if with_paper else []))
    console.print(table)
    console.print("Parameters at each model's default class count. FLOPs count a multiply-add as 2; "
                  "torchvision's tables quote multiply-adds (GMACs).")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from ..weights import cached_path, weights_entries

    entries = weights_entries(args.pattern or "*", source=args.source)
    if not entries:
        sources = sorted({e.source for e in weights_entries()})
        raise ConfigError(f"no weights match {args.pattern or '*'!r}"
                          + (f" from {args.source!r} (sources: {', '.join(sources)})" if args.source else "")
                          + "; `resnetlab weights` lists all")
    rows = []
    for e in entries:
        rows.append({"model": e.arch, "weights": e.name, "default": e.default, "source": e.source,
                     "acc@1": e.metrics.get("acc@1"), "acc@5": e.metrics.get("acc@5"), "classes": e.classes,
                     "params": e.num_params, "size_mb": e.file_size_mb,
                     "input": f"{e.input_size[1]}", "resize": e.resize if e.crop_pct < 1 else None,
                     "interpolation": e.interpolation, "license": e.license, "url": e.url,
                     "cached": cached_path(e) is not None})
    if args.json:
        print(json_text(rows, indent=2))
        return 0
    from rich import box

    # as many facts as fit: an 80-column terminal gets model, name, acc@1, size, eval input, cached
    width = console.width
    extra = [c for c, need in (("source", 100), ("acc@5", 120), ("data", 135), ("params", 150)) if width >= need]
    table = Table(title="pretrained weights (model=MODEL weights=NAME; * = DEFAULT)", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False)
    for column in ("model", "weights", *[c for c in ("source",) if c in extra], "acc@1",
                   *[c for c in ("acc@5", "data", "params") if c in extra], "MB", "input", "cached"):
        table.add_column(column, justify="left" if column in ("model", "weights", "source", "data") else "right",
                         no_wrap=True, min_width=len(column) if column in ("MB", "cached") else None)
    for row in rows:
        size = row["input"] if row["resize"] is None else f"{row['resize']}->{row['input']}"
        if width >= 100 and row["resize"] is not None:
            size += f" {row['interpolation']}"
        cells = {"source": row["source"], "acc@5": "" if row["acc@5"] is None else f"{row['acc@5']:.2f}",
                 "data": row["classes"], "params": f"{row['params']:,}"}
        table.add_row(row["model"], row["weights"] + (" *" if row["default"] else ""),
                      *[cells["source"] for _ in ("source",) if "source" in extra],
                      "" if row["acc@1"] is None else f"{row['acc@1']:.2f}",
                      *[cells[c] for c in ("acc@5", "data", "params") if c in extra],
                      "" if row["size_mb"] is None else f"{row['size_mb']:.0f}", size, "yes" if row["cached"] else "")
    console.print(table)
    console.print("Accuracy in percent as published (`--json` gives the source, URL and license). Files are fetched "
                  "on first use into torch.hub's cache; RESNETLAB_MIRROR and RESNETLAB_OFFLINE=1 as for datasets.")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from ..data.sources import DATASETS

    table = Table(title="resnetlab datasets (data=NAME)")
    table.add_column("name")
    table.add_column("description")
    for name, (_, description) in sorted(DATASETS.items()):
        table.add_row(name, description)
    console.print(table)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from ..data.inspect import inspect_dataset

    if args.action != "inspect" or args.path is None:
        raise ConfigError("usage: resnetlab data inspect PATH_OR_NAME (an image folder, .csv manifest, .npz or a "
                          "dataset name)")
    report = inspect_dataset(args.path, **arguments_for(inspect_dataset, args))
    if args.json:
        print(json_text(report.to_dict(), indent=2))
        return 0
    totals = ", ".join(f"{split} {sum(c):,}" for split, c in report.counts.items())
    print(f"{report.source}: {len(report.class_names)} classes; {totals} images")
    table = Table(title="images per class")
    table.add_column("class")
    for split in report.counts:
        table.add_column(split, justify="right")
    for i, name in enumerate(report.class_names):
        table.add_row(name, *(f"{report.counts[split][i]:,}" for split in report.counts))
    console.print(table)
    if report.image_sizes:
        (w0, w1), (h0, h1) = report.image_sizes["width"], report.image_sizes["height"]
        print(f"image size: width {w0}..{w1}, height {h0}..{h1} pixels")
    if report.modes:
        print("modes: " + ", ".join(f"{mode} {count:,}" for mode, count in sorted(report.modes.items())))
    print(f"class imbalance (largest/smallest training class): {report.imbalance:.2f}")
    print(f"mean {report.mean}, std {report.std}; training would use {report.suggested}")
    if report.bad_files:
        print(f"{len(report.bad_files)} bad file(s) (training stops on them unless on_bad_image=skip):")
        for path, reason in report.bad_files:
            print(f"  {path}: {reason}")
    else:
        print("bad files: none")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..checkpoint import read_info

    info = read_info(args.model)
    print(json_text(info.to_dict(), indent=2))  # a diverged run's summary may hold NaN losses
    return 0
