"""The `resnetlab` command: each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import ConfigError, UserError, did_you_mean

console = Console()


def _print_settings_help() -> None:
    from .config import describe_settings

    table = Table(title="resnetlab train settings (key=value)", show_lines=False)
    for column in ("key", "type", "default", "meaning"):
        table.add_column(column)
    for row in describe_settings():
        table.add_row(*row)
    console.print(table)
    console.print("Examples: resnetlab train model=resnet20 epochs=40 lr=0.05\n"
                  "          resnetlab train config=my.yaml batch_size=64")


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config, parse_overrides
    from .training import train

    if args.help:
        args.parser.print_help()
        _print_settings_help()
        return 0
    overrides = parse_overrides(args.settings)
    config_file = overrides.pop("config", None)
    config = load_config(config_file, overrides)
    # a resumed run starts from its saved settings: the words given now (epochs=60) go on top of those
    result = train(config, **{k: v for k, v in overrides.items() if k != "recipe"}) if config.run.resume \
        else train(config)
    if result.run_dir is None:  # a process of a multi-process run other than rank 0: rank 0 reports
        return 0
    if result.stopped:
        done = result.history.rows[-1].epoch if result.history.rows else 0
        print(f"stopped by {result.stopped} after {done} complete epoch(s); the last checkpoint is "
              f"{result.last_path}.\nResume with: resnetlab train resume={result.run_dir}", file=sys.stderr)
        return 130
    table = Table(title=f"Run {result.run_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    best = result.info.training
    table.add_row("best epoch", f"{best.get('epoch', '-')} of {best['epochs']}")
    if best.get("val_accuracy") is not None:
        table.add_row("val accuracy", f"{best['val_accuracy']:.2%}")
    if result.test is not None:
        table.add_row("test accuracy", f"{result.test.accuracy:.2%}")
        table.add_row(f"test top-{min(5, result.info.num_classes)}", f"{result.test.top5:.2%}")
        table.add_row("test loss", f"{result.test.loss:.4f}")
    table.add_row("model file", str(result.best_path))
    console.print(table)
    if result.test is not None:
        print(f"test accuracy: {result.test.accuracy:.4f}")
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from .config import load_config, parse_overrides
    from .training.lr_find import lr_find

    overrides = parse_overrides(args.settings)
    config = load_config(overrides.pop("config", None), overrides)
    result = lr_find(config, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps)
    if result.suggestion is None:
        print("no clear descent in the loss; try more steps or a wider range (--start-lr, --end-lr)")
    else:
        print(f"suggested lr: {result.suggestion:.3g} (steepest descent of the loss)")
    if result.min_loss_lr is not None:
        print(f"lowest loss at lr {result.min_loss_lr:.3g} (a tenth of it is another common choice)")
    print(f"plot: {result.out_dir / 'lr_find.png'}")
    return 0


def _count(key: str, value: object, minimum: int) -> int:
    """An integer option from a flag or a key=value word, at least `minimum`."""
    from .config import coerce

    number = coerce(key, value, int)
    if number < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {number}")
    return number


def _key_values(words: list[str], allowed: dict[str, str], namespace: argparse.Namespace) -> None:
    """Apply `key=value` words to `namespace` (the CLI takes both `--data x` and `data=x`)."""
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ConfigError(f"unexpected argument {word!r}")
        key = key.strip().replace("-", "_")
        if key not in allowed:
            raise ConfigError(f"unknown option {key!r}{did_you_mean(key, allowed)}; options: {', '.join(allowed)}")
        setattr(namespace, allowed[key], value)


def _split_model(args: argparse.Namespace, words: list[str]) -> list[str]:
    """Set args.model and args.weights from `model=`/`weights=` words (anywhere) or the first plain word (a
    model file); return the other words. `predict cat.jpg model=resnet50 weights=DEFAULT` and
    `predict run/best.safetensors cat.jpg` both work."""
    rest, model = [], None
    for word in words:
        key, sep, value = word.partition("=")
        key = key.strip().replace("-", "_")
        if sep and key == "model":
            model = value
        elif sep and key == "weights":
            args.weights = value
        else:
            rest.append(word)
    if model is None:
        plain = [w for w in rest if "=" not in w]
        if not plain:
            raise ConfigError("give a model file, or model=ARCH weights=NAME (`resnetlab weights` lists the names)")
        model = plain[0]
        rest.remove(model)
    args.model = model
    return rest


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .analysis.report import evaluate

    args.extra = _split_model(args, [*([args.model] if args.model else []), *args.extra])
    _key_values(args.extra, {"data": "data", "split": "split", "data_dir": "data_dir", "device": "device",
                             "batch_size": "batch_size", "workers": "workers", "tta": "tta", "out": "out",
                             "ema": "ema", "backend": "backend", "precision": "precision", "verify": "verify",
                             "path_column": "path_column", "label_column": "label_column"}, args)
    from .config import coerce

    report = evaluate(args.model, args.data, split=args.split, data_dir=args.data_dir, tta=args.tta,
                      batch_size=_count("batch_size", args.batch_size, 1), device=args.device,
                      workers=None if args.workers is None else _count("workers", args.workers, 0),
                      ema=coerce("ema", args.ema, bool), backend=args.backend, precision=args.precision,
                      weights=args.weights, verify=None if args.verify is None else coerce("verify", args.verify, bool),
                      path_column=args.path_column, label_column=args.label_column)
    folder = None
    if not args.no_report:
        default = Path(args.model).parent / f"eval-{Path(report.data).name}-{args.split}"
        folder = report.write(args.out or default)
    result = report.result
    if args.json:
        # strict JSON: a class that was never predicted has a NaN precision
        print(_json_text({**report.summary(), "report": str(folder) if folder else None}))
        return 0
    print(f"model: {args.model} ({report.weights} weights)\ndata:  {report.data}, {args.split} split, "
          f"{result.num_samples} images, TTA {args.tta}\nrun:   {report.extra['backend']} {args.precision}")
    if "accuracy_change" in report.extra:
        print(f"{args.precision} accuracy {result.accuracy:.2%} against fp32 {report.extra['fp32_accuracy']:.2%}: "
              f"{100 * report.extra['accuracy_change']:+.2f} points")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    averages = result.averages()
    top_k = f"top-{min(5, len(result.class_names))} accuracy"  # top-5 of fewer classes is top-K
    for name, value in (("accuracy", f"{result.accuracy:.2%}"), (top_k, f"{result.top5:.2%}"),
                        ("loss", f"{result.loss:.4f}"), ("calibration error (ECE)", f"{result.ece:.4f}"),
                        ("macro F1", f"{averages['macro']['f1']:.4f}")):
        table.add_row(name, value)
    console.print(table)
    per_class = Table(title="per class")
    for column in ("class", "accuracy", "precision", "F1", "images"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for i, name in enumerate(result.class_names[:30]):
        cells = [result.recall[i], result.precision[i], result.f1[i]]
        per_class.add_row(name, *("-" if c != c else f"{c:.2%}" for c in cells), str(int(result.support[i])))
    console.print(per_class)
    if len(result.class_names) > 30:
        print(f"... {len(result.class_names) - 30} more classes in the report")
    confused = result.most_confused(5)
    if confused:
        print("most confused: " + "; ".join(f"{t} -> {p} ({n})" for t, p, n in confused))
    if folder:
        print(f"report: {folder / 'report.html'}")
    return 0


def _json_text(value: object, **options: object) -> str:
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


def cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from .data.images import expand_paths
    from .deploy.predict import Predictor

    words = _split_model(args, [args.model, *args.images])
    images = [w for w in words if "=" not in w or Path(w).exists()]  # a file may have "=" in its name
    _key_values([w for w in words if w not in images], {
        "topk": "topk", "batch_size": "batch_size", "workers": "workers", "device": "device", "backend": "backend",
        "precision": "precision", "calibration": "calibration"}, args)
    if not images:
        raise ConfigError("give the image files, folders or globs to predict")
    predictor = Predictor.from_file(args.model, device=args.device, batch_size=_count("batch_size", args.batch_size, 1),
                                    backend=args.backend, precision=args.precision, weights=args.weights,
                                    calibration=args.calibration)
    paths = expand_paths(images)
    workers = None if args.workers is None else _count("workers", args.workers, 0)
    predictions = predictor.predict_files(paths, topk=_count("topk", args.topk, 1), workers=workers)
    failures = [p for p in predictions if p.error]
    if args.json:
        print(_json_text([p.to_dict() for p in predictions], indent=2))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        k = max((len(p.labels) for p in predictions), default=0)
        writer.writerow(["source", *[f"{kind}{i + 1}" for i in range(k) for kind in ("label", "prob")], "error"])
        for p in predictions:
            cells = [value for label, prob in zip(p.labels, p.probs) for value in (label, f"{prob:.6f}")]
            writer.writerow([p.source, *cells, *[""] * (2 * k - len(cells)), p.error or ""])
    else:
        table = Table(title=f"top-{args.topk} predictions of {Path(args.model).name}")
        table.add_column("image")
        table.add_column("prediction")
        table.add_column("probability", justify="right")
        table.add_column("others")
        for p in predictions:
            if p.error:
                table.add_row(p.source, "[red]error[/red]", "", p.error)
            else:
                others = ", ".join(f"{lab} {prob:.1%}" for lab, prob in zip(p.labels[1:], p.probs[1:]))
                table.add_row(p.source, p.labels[0], f"{p.probs[0]:.1%}", others)
        console.print(table)
    for p in failures:
        print(f"error: {p.error}", file=sys.stderr)
    if failures:
        print(f"{len(predictions) - len(failures)} of {len(predictions)} image(s) predicted; {len(failures)} could "
              f"not be read", file=sys.stderr)
    return 1 if failures else 0  # every readable file is predicted; a failure still shows in the exit status


def cmd_embed(args: argparse.Namespace) -> int:
    from .deploy.embed import embed_files
    from .deploy.predict import Predictor

    words = _split_model(args, [args.model, *args.images])
    images = [w for w in words if "=" not in w]
    _key_values([w for w in words if "=" in w], {"out": "out", "batch_size": "batch_size", "workers": "workers",
                                                  "device": "device"}, args)
    if not images:
        raise ConfigError("give the image files, folders or globs to embed")
    predictor = Predictor.from_file(args.model, device=args.device, batch_size=_count("batch_size", args.batch_size, 1),
                                    weights=args.weights)
    workers = None if args.workers is None else _count("workers", args.workers, 0)
    result = embed_files(predictor, images, workers=workers)
    out = result.save(args.out)
    labelled = f", labels of {len(result.class_names)} class folders" if result.labels is not None else ""
    print(f"wrote {out}: {result.features.shape[0]} x {result.features.shape[1]} features{labelled}")
    for path, reason in result.failed:
        print(f"error: {path}: {reason}", file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .analysis.explain import explain_files
    from .data.images import expand_paths
    from .deploy.predict import Predictor

    words = _split_model(args, [args.model, *args.images])
    images = [w for w in words if "=" not in w or Path(w).exists()]  # a file may have "=" in its name
    _key_values([w for w in words if w not in images], {"out": "out", "class": "class_name",
                                                         "class_name": "class_name", "device": "device"}, args)
    if not images:
        raise ConfigError("give the image files, folders or globs to explain")
    predictor = Predictor.from_file(args.model, device=args.device, weights=args.weights)
    out = Path(args.out) if args.out else Path(args.model).parent / "explain"
    results = explain_files(predictor, expand_paths(images), out, class_name=args.class_name)
    table = Table(title=f"Grad-CAM of {Path(args.model).name} (heat maps in {out})")
    for column in ("image", "explained class", "probability", "predicted", "heat map"):
        table.add_column(column, overflow="fold")  # a path cut short with "..." names no file
    for r in results:
        if r.error:
            table.add_row(r.source, "[red]error[/red]", "", "", r.error)
        else:
            table.add_row(r.source, r.label, f"{r.prob:.1%}", r.predicted, str(r.heat_path.relative_to(out)))
    console.print(table)
    failures = [r for r in results if r.error]
    for r in failures:
        print(f"error: {r.error}", file=sys.stderr)
    return 1 if failures and len(failures) == len(results) else 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models.summary import model_stats
    from .registry import get_model_entry, list_models

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
    from .weights import cached_path, weights_entries

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
        print(_json_text(rows, indent=2))
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
    from .data.sources import DATASETS

    table = Table(title="resnetlab datasets (data=NAME)")
    table.add_column("name")
    table.add_column("description")
    for name, (_, description) in sorted(DATASETS.items()):
        table.add_row(name, description)
    console.print(table)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from .data.inspect import inspect_dataset

    _key_values(args.extra, {"data_dir": "data_dir", "workers": "workers", "verify": "verify",
                             "path_column": "path_column", "label_column": "label_column"}, args)
    from .config import coerce

    report = inspect_dataset(args.path, data_dir=args.data_dir,
                             workers=None if args.workers is None else _count("workers", args.workers, 0),
                             verify=coerce("verify", args.verify, bool), path_column=args.path_column,
                             label_column=args.label_column)
    if args.json:
        print(_json_text(report.to_dict(), indent=2))
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
    from .checkpoint import read_info

    info = read_info(args.model)
    print(_json_text(info.to_dict(), indent=2))  # a diverged run's summary may hold NaN losses
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    args.extra = _split_model(args, [*([args.model] if args.model else []), *args.extra])
    _key_values(args.extra, {"format": "format", "out": "out", "opset": "opset", "normalize": "normalize",
                             "exporter": "exporter"}, args)
    from .deploy.export import export_file

    if args.format == "torchvision" and args.normalize is not None:
        raise ConfigError("normalize= applies to onnx and torchscript graphs; a torchvision state dict carries "
                          "no preprocessing (normalize inputs with the mean/std that `resnetlab info` shows)")
    options = {} if args.format == "torchvision" else {"normalize": args.normalize or "baked"}
    if args.format == "onnx":
        options.update(opset=_count("opset", args.opset, 17), exporter=args.exporter)
    report = export_file(args.model, args.format, args.out, weights=args.weights, **options)
    print(f"wrote {report.summary()}")
    if args.format == "torchvision":
        print("a plain state dict: torchvision/timm load it with strict=True (torch.load weights_only=True); "
              "normalize inputs with the model's mean/std (resnetlab info MODEL)")
    return 0


def cmd_import_weights(args: argparse.Namespace) -> int:
    from .deploy.interop import import_weights

    _key_values(args.extra, {"arch": "arch", "out": "out", "img_size": "img_size", "classes": "classes",
                             "mean": "mean", "std": "std", "crop_pct": "crop_pct", "interpolation": "interpolation"},
                args)
    if not args.arch:
        raise ConfigError("give the architecture the weights are for: arch=resnet50 (see `resnetlab models`)")
    names = None
    if args.classes:
        try:
            text = Path(args.classes).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"classes={args.classes}: give a UTF-8 text file with one class name per line "
                              f"({exc})") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
    out = args.out or Path(args.file).with_suffix(".safetensors").name
    if Path(out).resolve() == Path(args.file).resolve():
        raise ConfigError(f"the model file would replace its source {args.file}; give another name with out=FILE")
    from .config import coerce

    def numbers(key: str) -> tuple[float, ...] | None:
        text = getattr(args, key)
        if text is None:
            return None
        try:
            return tuple(float(v) for v in str(text).split(","))
        except ValueError:
            raise ConfigError(f"{key} must be numbers separated by commas, e.g. {key}=0.485,0.456,0.406; "
                              f"got {text!r}") from None

    path, info = import_weights(
        args.file, args.arch, out, class_names=names,
        img_size=None if args.img_size is None else _count("img_size", args.img_size, 8),
        crop_pct=None if args.crop_pct is None else coerce("crop_pct", args.crop_pct, float),
        interpolation=args.interpolation, mean=numbers("mean"), std=numbers("std"))
    resize = "resized straight" if info.crop_pct >= 1 else \
        f"resize {round(info.input_size[1] / info.crop_pct)} + center crop"
    print(f"wrote {path}: {info.arch.name}, {info.num_classes} classes ({', '.join(info.class_names[:3])}, ...), "
          f"input {info.input_size[1]}x{info.input_size[2]} ({resize}, {info.interpolation}), mean {info.mean} "
          f"std {info.std}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = ("host", "port", "backend", "precision", "device", "max_batch_size", "max_wait_ms", "max_body_mb",
                "max_pixels", "max_files", "max_decode_mpix", "timeout_s", "header_timeout_s", "stall_timeout_s",
                "access_log")
    args.extra = _split_model(args, [*([args.model] if args.model else []), *args.extra])
    _key_values(args.extra, {key: key for key in settings}, args)
    try:
        from .deploy.serve import ServeConfig, serve
    except ImportError as exc:
        raise ConfigError(f"serving needs FastAPI and uvicorn ({exc.name} is missing): "
                          f"pip install 'resnetlab[serve]'") from None
    from typing import get_type_hints

    from .config import coerce

    types = get_type_hints(ServeConfig)
    given = {key: coerce(key, getattr(args, key), types[key]) for key in settings if getattr(args, key) is not None}
    config = ServeConfig(**given)  # checks every range: port=70000 or timeout_s=nan stop here, not in uvicorn
    serve(args.model, config, weights=args.weights)
    return 0


def _backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto",
                   help="auto (fastest fp32 on this machine, measured once) | torch | onnxruntime | openvino")
    p.add_argument("--precision", default="fp32", help="fp32 | bf16 | int8 (reduced precision only when asked)")


def _weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None,
                   help="with an architecture as the model: published weights (DEFAULT, IMAGENET1K_V2, "
                        "timm:resnet50.a1_in1k, hf-hub:ORG/NAME; `resnetlab weights` lists them)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnetlab", description="Residual networks for image classification.")
    parser.add_argument("--version", action="version", version=f"resnetlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model (key=value settings; --help lists them)", add_help=False)
    p.add_argument("settings", nargs="*", help="key=value settings, e.g. model=resnet20 epochs=30 (config=FILE.yaml)")
    p.add_argument("-h", "--help", action="store_true", help="show this help and every setting")
    p.set_defaults(func=cmd_train, parser=p)

    p = sub.add_parser("lr-find", help="learning-rate range test: plot loss against lr, suggest an lr")
    p.add_argument("settings", nargs="*", help="key=value settings as for train (model=, data=, batch_size=, ...)")
    p.add_argument("--start-lr", dest="start_lr", type=float, default=1e-6)
    p.add_argument("--end-lr", dest="end_lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=200, help="at most this many training steps")
    p.set_defaults(func=cmd_lr_find)

    p = sub.add_parser("evaluate", help="accuracy, top-5, loss and per-class accuracy of a model file on a dataset")
    p.add_argument("model", nargs="?", help="model file (.safetensors or .h5), or model=ARCH weights=NAME")
    p.add_argument("extra", nargs="*", help="data=NAME split=test|val|train data_dir=DIR tta=flip out=DIR ...")
    _weights_option(p)
    p.add_argument("--verify", default=None, help="false: accept dataset files that are not the official bytes")
    p.add_argument("--path-column", dest="path_column", default=None, help="a .csv manifest's path column")
    p.add_argument("--label-column", dest="label_column", default=None, help="a .csv manifest's label column")
    p.add_argument("--data", default=None, help="dataset name (default: the one the model was trained on)")
    p.add_argument("--split", default="test", help="train | val | test")
    p.add_argument("--data-dir", dest="data_dir", default=None)
    p.add_argument("--workers", default=None, help="image-decoding processes (image folders)")
    p.add_argument("--batch-size", dest="batch_size", default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--tta", default="none", help="test-time augmentation: none | flip | flip+shift")
    p.add_argument("--out", default=None, help="report folder (default: next to the model, eval-DATA-SPLIT)")
    p.add_argument("--no-report", dest="no_report", action="store_true", help="print the numbers only")
    p.add_argument("--ema", default="true", help="use a training checkpoint's EMA weights when it has them")
    _backend_options(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes for image files, folders (recursive) and globs")
    p.add_argument("model", help="model file (.safetensors or .h5), or model=ARCH weights=NAME anywhere")
    p.add_argument("images", nargs="*", help="image files (PNG, JPEG, BMP, WebP, GIF, TIFF), folders or globs")
    _weights_option(p)
    p.add_argument("--topk", "-k", default=5)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print predictions as JSON")
    output.add_argument("--csv", action="store_true", help="print predictions as CSV")
    p.add_argument("--batch-size", dest="batch_size", default=64)
    p.add_argument("--workers", default=None, help="decoding processes (default: one per core)")
    p.add_argument("--device", default="auto")
    p.add_argument("--calibration", default=None,
                   help="precision=int8: a folder of images to calibrate on (default: the model's training data)")
    _backend_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("explain", help="Grad-CAM heat maps: where the evidence for the class is")
    p.add_argument("model", help="model file (.safetensors or .h5), or model=ARCH weights=NAME anywhere")
    p.add_argument("images", nargs="*", help="image files, folders or globs; also out=DIR class=NAME device=DEVICE")
    _weights_option(p)
    p.add_argument("--class", dest="class_name", default=None, help="explain this class (default: the predicted one)")
    p.add_argument("--out", default=None, help="folder for the PNG overlays, in the images' subfolders "
                                               "(default: next to the model, explain/)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("embed", help="pooled features of image files -> .npz (retrieval, linear probes)")
    p.add_argument("model", help="model file, or model=ARCH weights=NAME anywhere")
    p.add_argument("images", nargs="*", help="image files, folders (class subfolders give labels) or globs")
    _weights_option(p)
    p.add_argument("--out", default="features.npz", help="output .npz (features, paths, labels, class_names)")
    p.add_argument("--batch-size", dest="batch_size", default=64)
    p.add_argument("--workers", default=None, help="decoding processes (default: one per core)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("export", help="ONNX or TorchScript file verified against PyTorch, or a torchvision state dict")
    p.add_argument("model", nargs="?", help="model file (.safetensors or .h5), or model=ARCH weights=NAME")
    p.add_argument("extra", nargs="*", help="format=onnx|torchscript|torchvision out=FILE opset=17 normalize=baked")
    _weights_option(p)
    p.add_argument("--format", default="onnx", help="onnx | torchscript | torchvision (.pth state dict)")
    p.add_argument("--out", default=None, help="output file (default: the model's name with .onnx/.pt/.pth)")
    p.add_argument("--opset", default=17, help="ONNX opset (17 or newer)")
    p.add_argument("--normalize", default=None,
                   help="baked (default): the file takes 0..1 pixels | metadata: it takes normalized ones "
                        "(mean/std in metadata); onnx and torchscript only")
    p.add_argument("--exporter", default="torchscript", help="ONNX exporter: torchscript | dynamo")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import-weights", help="torchvision/timm ResNet weights (.pth, .safetensors) -> a model file")
    p.add_argument("file", help="state dict file (.pth is read with weights_only=True)")
    p.add_argument("extra", nargs="*",
                   help="arch=resnet50 out=FILE img_size=224 mean=R,G,B std=R,G,B crop_pct=0.875 classes=FILE")
    p.add_argument("--arch", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--img-size", dest="img_size", default=None, help="default: the architecture's (224, or 32)")
    p.add_argument("--mean", default=None, help="per-channel mean, comma-separated (default: ImageNet's or CIFAR's)")
    p.add_argument("--std", default=None, help="per-channel std, comma-separated")
    p.add_argument("--crop-pct", dest="crop_pct", default=None, help="crop / resize (0.875: 256 -> 224; 1: none)")
    p.add_argument("--interpolation", default="bilinear", help="bilinear | bicubic | nearest | box | lanczos")
    p.add_argument("--classes", default=None, help="text file, one class name per line (default: ImageNet's)")
    p.set_defaults(func=cmd_import_weights)

    p = sub.add_parser("serve", help="HTTP server with a web page: POST /v1/predict, /v1/predict/batch")
    p.add_argument("model", nargs="?", help="model file (.safetensors or .h5), or model=ARCH weights=NAME")
    p.add_argument("extra", nargs="*", help="host=127.0.0.1 port=8000 max_batch_size=32 max_wait_ms=2 ...")
    _weights_option(p)
    # no defaults here: ServeConfig holds them (and checks every value)
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", default=None, help="0..65535, 0: any free port (default 8000)")
    p.add_argument("--max-batch-size", dest="max_batch_size", default=None, help="micro-batch size limit (32)")
    p.add_argument("--max-wait-ms", dest="max_wait_ms", default=None, help="longest wait to fill a micro-batch (2)")
    p.add_argument("--max-body-mb", dest="max_body_mb", default=None, help="largest request body (10)")
    p.add_argument("--max-pixels", dest="max_pixels", default=None, help="largest image, width x height (40e6)")
    p.add_argument("--max-files", dest="max_files", default=None, help="images per batch request (64)")
    p.add_argument("--max-decode-mpix", dest="max_decode_mpix", default=None,
                   help="megapixels decoded at once, all requests; over it: 503 + Retry-After (200)")
    p.add_argument("--timeout-s", dest="timeout_s", default=None, help="request timeout (30)")
    p.add_argument("--header-timeout-s", dest="header_timeout_s", default=None,
                   help="time a client has to send a request's headers (10)")
    p.add_argument("--stall-timeout-s", dest="stall_timeout_s", default=None,
                   help="longest pause in an upload, then 408 (10)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default auto)")
    p.add_argument("--access-log", dest="access_log", default=None, action=argparse.BooleanOptionalAction,
                   help="a line per request on stdout (default on; --no-access-log or access_log=false: off)")
    _backend_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="list the registered architectures")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--family", default=None, help="imagenet | cifar | plain | preact | wide | baseline")
    p.add_argument("--no-flops", action="store_true", help="skip counting FLOPs (faster)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("weights", help="list the pretrained weights `weights=` accepts, and whether each is cached")
    p.add_argument("pattern", nargs="?", help="shell-style filter on the model or name, e.g. 'resnet5*'")
    p.add_argument("--source", default=None, help="torchvision | timm | akamaster | chenyaofo")
    p.add_argument("--json", action="store_true", help="print the list as JSON (with URL, license, metrics)")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("datasets", help="list the datasets `data=` accepts")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("data", help="inspect a dataset: `resnetlab data inspect PATH_OR_NAME`")
    p.add_argument("action", choices=["inspect"])
    p.add_argument("path", help="image folder, .csv manifest, .npz, or a dataset name")
    p.add_argument("extra", nargs="*", help="data_dir=DIR workers=N verify=false path_column=C label_column=C")
    p.add_argument("--data-dir", dest="data_dir", default=None)
    p.add_argument("--path-column", dest="path_column", default=None, help="a .csv manifest's path column")
    p.add_argument("--label-column", dest="label_column", default=None, help="a .csv manifest's label column")
    p.add_argument("--workers", default=None, type=int)
    p.add_argument("--verify", default="true", help="false: accept files that are not the official bytes")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("info", help="print a model file's metadata (architecture, classes, preprocessing)")
    p.add_argument("model")
    p.set_defaults(func=cmd_info)
    return parser


# the list positional that takes each subcommand's key=value words
WORDS = {"train": "settings", "lr-find": "settings", "evaluate": "extra", "export": "extra", "serve": "extra",
         "import-weights": "extra", "data": "extra", "predict": "images", "explain": "images", "embed": "images"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse ends a list positional at the first flag: `evaluate m.safetensors --json data=x` leaves data=x
    # over; words given after flags join the subcommand's own list, so order does not matter
    args, leftover = parser.parse_known_args(argv)
    words = WORDS.get(args.command or "")
    strays = [w for w in leftover if w.startswith("-") or words is None]
    if strays:
        parser.error(f"unrecognized arguments: {' '.join(strays)}")
    if leftover:
        setattr(args, words, [*(getattr(args, words) or []), *leftover])
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `resnetlab predict ... --json | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python would report the pipe again when it flushes at exit
        return 141  # 128 + SIGPIPE, what a shell tool killed by the closed pipe returns
    except (UserError, OSError) as exc:  # OSError: a path that cannot be read or written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
