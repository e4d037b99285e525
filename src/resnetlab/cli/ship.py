"""`resnetlab export | import-weights | serve`: a model file out to other formats, in from theirs, over HTTP."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import count_option, key_values, split_model


def cmd_export(args: argparse.Namespace) -> int:
    args.extra = split_model(args, [*([args.model] if args.model else []), *args.extra])
    key_values(args.extra, {"format": "format", "out": "out", "opset": "opset", "normalize": "normalize",
                             "exporter": "exporter"}, args)
    from ..deploy.export import export_file

    if args.format == "torchvision" and args.normalize is not None:
        raise ConfigError("normalize= applies to onnx and torchscript graphs; a torchvision state dict carries "
                          "no preprocessing (normalize inputs with the mean/std that `resnetlab info` shows)")
    options = {} if args.format == "torchvision" else {"normalize": args.normalize or "baked"}
    if args.format == "onnx":
        options.update(opset=count_option("opset", args.opset, 17), exporter=args.exporter)
    report = export_file(args.model, args.format, args.out, weights=args.weights, **options)
    print(f"wrote {report.summary()}")
    if args.format == "torchvision":
        print("a plain state dict: torchvision/timm load it with strict=True (torch.load weights_only=True); "
              "normalize inputs with the model's mean/std (resnetlab info MODEL)")
    return 0


def cmd_import_weights(args: argparse.Namespace) -> int:
    from ..deploy.interop import import_weights

    key_values(args.extra, {"arch": "arch", "out": "out", "img_size": "img_size", "classes": "classes",
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
    from ..config import coerce

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
        img_size=None if args.img_size is None else count_option("img_size", args.img_size, 8),
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
    args.extra = split_model(args, [*([args.model] if args.model else []), *args.extra])
    key_values(args.extra, {key: key for key in settings}, args)
    try:
        from ..deploy.serve import ServeConfig, serve
    except ImportError as exc:
        raise ConfigError(f"serving needs FastAPI and uvicorn ({exc.name} is missing): "
                          f"pip install 'resnetlab[serve]'") from None
    from typing import get_type_hints

    from ..config import coerce

    types = get_type_hints(ServeConfig)
    given = {key: coerce(key, getattr(args, key), types[key]) for key in settings if getattr(args, key) is not None}
    config = ServeConfig(**given)  # checks every range: port=70000 or timeout_s=nan stop here, not in uvicorn
    serve(args.model, config, weights=args.weights)
    return 0
