"""`resnetlab export | import-weights | serve`: a model file out to other formats, in from theirs, over HTTP."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import require_model
from .options import arguments_for


def cmd_export(args: argparse.Namespace) -> int:
    require_model(args)
    from ..deploy.export import export_file

    if args.format == "torchvision" and "normalize" in args.given:
        raise ConfigError("normalize= applies to onnx and torchscript graphs; a torchvision state dict carries "
                          "no preprocessing (normalize inputs with the mean/std that `resnetlab info` shows)")
    options = {} if args.format == "torchvision" else {"normalize": args.normalize}
    if args.format == "onnx":
        options.update(opset=args.opset, exporter=args.exporter)
    report = export_file(args.model, args.format, args.out, weights=args.weights, **options)
    print(f"wrote {report.summary()}")
    if args.format == "torchvision":
        print("a plain state dict: torchvision/timm load it with strict=True (torch.load weights_only=True); "
              "normalize inputs with the model's mean/std (resnetlab info MODEL)")
    return 0


def cmd_import_weights(args: argparse.Namespace) -> int:
    from ..deploy.interop import import_weights

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
    path, info = import_weights(args.file, args.arch, out, class_names=names, img_size=args.img_size,
                                crop_pct=args.crop_pct, interpolation=args.interpolation, mean=args.mean, std=args.std)
    resize = "resized straight" if info.crop_pct >= 1 else \
        f"resize {round(info.input_size[1] / info.crop_pct)} + center crop"
    print(f"wrote {path}: {info.arch.name}, {info.num_classes} classes ({', '.join(info.class_names[:3])}, ...), "
          f"input {info.input_size[1]}x{info.input_size[2]} ({resize}, {info.interpolation}), mean {info.mean} "
          f"std {info.std}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ..deploy.serve.settings import ServeConfig

    require_model(args)
    config = ServeConfig(**arguments_for(ServeConfig, args))  # checks every range: port=70000 stops here
    try:
        from ..deploy.serve import serve
    except ImportError as exc:
        raise ConfigError(f"serving needs FastAPI and uvicorn ({exc.name} is missing): "
                          f"pip install 'resnetlab[serve]'") from None
    serve(args.model, config, weights=args.weights)
    return 0
