"""The argument parser: every subcommand, its arguments and its help."""

from __future__ import annotations

import argparse

from .. import __version__
from .catalog import cmd_data, cmd_datasets, cmd_info, cmd_models, cmd_weights
from .ship import cmd_export, cmd_import_weights, cmd_serve
from .train import cmd_lr_find, cmd_train
from .use import cmd_embed, cmd_evaluate, cmd_explain, cmd_predict


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
