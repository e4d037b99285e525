"""Every subcommand: its positionals and options, each taken from the library function or dataclass it feeds.

The types and defaults are the library's (a changed default changes the CLI with it); only the help
lines are written here. `resnetlab COMMAND --help` prints them as a table.
"""

from __future__ import annotations

from rich.table import Table

from ..analysis.report import evaluate
from ..data.inspect import inspect_dataset
from ..deploy.embed import embed_files
from ..deploy.export import export_file, export_onnx
from ..deploy.interop import import_weights
from ..deploy.predict import Predictor
from ..deploy.serve.settings import ServeConfig
from ..training.lr_find import lr_find
from .catalog import cmd_data, cmd_datasets, cmd_info, cmd_models, cmd_weights
from .common import console
from .options import Command, Option, Positional, from_dataclass, from_signature
from .ship import cmd_export, cmd_import_weights, cmd_serve
from .train import cmd_lr_find, cmd_train
from .use import cmd_embed, cmd_evaluate, cmd_explain, cmd_predict

MODEL = Positional("model", "model file (.safetensors or .h5), or an architecture with weights=NAME")
IMAGES = Positional("images", "image files (PNG, JPEG, BMP, WebP, GIF, TIFF), folders (recursive) or globs", many=True)
WEIGHTS_HELP = ("with an architecture as the model: published weights (DEFAULT, IMAGENET1K_V2, timm:resnet50.a1_in1k, "
                "hf-hub:ORG/NAME; `resnetlab weights` lists them)")
BACKEND_HELP = {"backend": "auto (the fastest fp32 backend here, measured once) | torch | onnxruntime | openvino",
                "precision": "fp32 | bf16 | int8 (reduced precision only when asked for)"}
JSON = Option("json", bool, False, "print the result as JSON")
COUNTS = {"batch_size": 1, "workers": 0, "topk": 1, "img_size": 8, "steps": 10}  # the library checks them too


def _predictor(*names: str) -> list[Option]:
    helps = {"device": "auto | cpu | cuda | mps", "batch_size": "images per forward pass", "weights": WEIGHTS_HELP,
             **BACKEND_HELP, "calibration": "precision=int8: a folder of images to calibrate on (default: the "
                                           "model's training data)"}
    return from_signature(Predictor.from_file, {n: helps[n] for n in names}, minimum=COUNTS)


def commands() -> dict[str, Command]:
    table = [
        Command("train", "train a model (key=value settings; --help lists them)", cmd_train,
                options=[Option("config", str, None, "a YAML file of settings, applied after the recipe")],
                free_settings=True),
        Command("lr-find", "learning-rate range test: plot loss against lr, suggest an lr", cmd_lr_find,
                options=[Option("config", str, None, "a YAML file of settings, applied after the recipe"),
                         *from_signature(lr_find, {"start_lr": "the first lr tried", "end_lr": "the last lr tried",
                                                   "steps": "at most this many training steps"}, minimum=COUNTS)],
                free_settings=True),
        Command("evaluate", "accuracy, top-5, loss and per-class accuracy of a model on a dataset", cmd_evaluate,
                [MODEL], [*from_signature(evaluate, {
                    "data": "dataset name or path (default: the one the model was trained on)",
                    "split": "train | val | test", "data_dir": "folder of an official dataset's files",
                    "tta": "test-time augmentation: none | flip | flip+shift",
                    "batch_size": "images per forward pass", "device": "auto | cpu | cuda | mps",
                    "workers": "image-decoding processes (image folders)",
                    "ema": "a training checkpoint's EMA weights when it has them", **BACKEND_HELP,
                    "weights": WEIGHTS_HELP, "verify": "false: accept dataset files that are not the official bytes",
                    "path_column": "a .csv manifest's path column", "label_column": "a .csv manifest's label column"},
                    minimum=COUNTS),
                    JSON, Option("out", str, None, "report folder (default: next to the model, eval-DATA-SPLIT)"),
                    Option("no_report", bool, False, "print the numbers only, write no report folder")]),
        Command("predict", "top-k classes for image files, folders (recursive) and globs", cmd_predict,
                [MODEL, IMAGES], [*_predictor("weights", "batch_size", "device", "backend", "precision",
                                              "calibration"),
                                  *from_signature(Predictor.predict_files, {
                                      "topk": "how many classes to show per image",
                                      "workers": "decoding processes (default: one per core)"},
                                      minimum=COUNTS, short={"topk": "-k"}),
                                  Option("json", bool, False, "print the predictions as JSON"),
                                  Option("csv", bool, False, "print the predictions as CSV")]),
        Command("explain", "Grad-CAM heat maps: where the evidence for the class is", cmd_explain,
                [MODEL, IMAGES], [*_predictor("weights", "device"),
                                  Option("class_name", str, None, "explain this class (default: the predicted one)",
                                         aliases=("class",)),
                                  Option("out", str, None, "folder for the PNG overlays, in the images' subfolders "
                                                           "(default: next to the model, explain/)")]),
        Command("embed", "pooled features of image files -> .npz (retrieval, linear probes)", cmd_embed,
                [MODEL, IMAGES], [*_predictor("weights", "batch_size", "device"),
                                  *from_signature(embed_files, {"workers": "decoding processes (default: one per "
                                                                           "core)"}, minimum=COUNTS),
                                  Option("out", str, "features.npz", "the .npz to write (features, paths, labels, "
                                                                     "class_names)")]),
        Command("export", "ONNX or TorchScript file verified against PyTorch, or a torchvision state dict",
                cmd_export, [MODEL], [
                    *from_signature(export_file, {"fmt": "onnx | torchscript | torchvision (.pth state dict)",
                                                  "out": "output file (default: the model's name, .onnx/.pt/.pth)",
                                                  "weights": WEIGHTS_HELP}, rename={"fmt": "format"}),
                    *from_signature(export_onnx, {"opset": "ONNX opset (17 or newer)",
                                                  "normalize": "baked: the file takes 0..1 pixels | metadata: it "
                                                               "takes normalized ones (onnx and torchscript)",
                                                  "exporter": "ONNX exporter: torchscript | dynamo"})]),
        Command("import-weights", "torchvision/timm ResNet weights (.pth, .safetensors) -> a model file",
                cmd_import_weights,
                [Positional("file", "state dict file (.pth is read with weights_only=True)", required=True)],
                [*from_signature(import_weights, {
                    "arch": "the architecture the weights are for (`resnetlab models`)",
                    "out": "the model file to write (default: the file's name, .safetensors)",
                    "img_size": "input size (default: the architecture's, 224 or 32)",
                    "mean": "per-channel mean, comma-separated (default: ImageNet's or CIFAR's)",
                    "std": "per-channel std, comma-separated", "crop_pct": "crop / resize (0.875: 256 -> 224; 1: none)",
                    "interpolation": "bilinear | bicubic | nearest | box | lanczos"}, minimum=COUNTS),
                 Option("classes", str, None, "text file, one class name per line (default: ImageNet's)")]),
        Command("serve", "HTTP server with a web page: POST /v1/predict, /v1/predict/batch", cmd_serve, [MODEL],
                [*from_dataclass(ServeConfig, SERVE_HELP), Option("weights", str, None, WEIGHTS_HELP)]),
        Command("models", "list the registered architectures", cmd_models,
                [Positional("pattern", "shell-style filter, e.g. 'resnet*'")],
                [Option("family", str, None, "imagenet | cifar | plain | preact | wide | baseline"),
                 Option("no_flops", bool, False, "skip counting FLOPs (faster)")]),
        Command("weights", "list the pretrained weights `weights=` accepts, and whether each is cached", cmd_weights,
                [Positional("pattern", "shell-style filter on the model or name, e.g. 'resnet5*'")],
                [Option("source", str, None, "torchvision | timm | akamaster | chenyaofo"),
                 Option("json", bool, False, "print the list as JSON (with URL, license, metrics)")]),
        Command("datasets", "list the datasets `data=` accepts", cmd_datasets),
        Command("data", "inspect a dataset: `resnetlab data inspect PATH_OR_NAME`", cmd_data,
                [Positional("action", "inspect"), Positional("path", "image folder, .csv manifest, .npz, or a name")],
                [*from_signature(inspect_dataset, {
                    "data_dir": "folder of an official dataset's files", "workers": "image-decoding processes",
                    "verify": "false: accept files that are not the official bytes",
                    "path_column": "a .csv manifest's path column", "label_column": "a .csv manifest's label column"},
                    minimum=COUNTS), JSON]),
        Command("info", "print a model file's metadata (architecture, classes, preprocessing)", cmd_info,
                [Positional("model", "model file", required=True)]),
    ]
    return {command.name: command for command in table}


SERVE_HELP = {
    "host": "address to listen on", "port": "0..65535 (0: any free port)",
    "max_batch_size": "micro-batch size limit", "max_wait_ms": "longest wait to fill a micro-batch",
    "max_body_mb": "largest request body", "max_pixels": "largest image, width x height",
    "max_files": "images per batch request",
    "max_decode_mpix": "megapixels decoded at once over all requests; beyond it 503 + Retry-After",
    "timeout_s": "whole-request timeout", "header_timeout_s": "time a client has to send a request's headers",
    "stall_timeout_s": "longest pause in an upload, then 408", **BACKEND_HELP, "device": "auto | cpu | cuda",
    "access_log": "a line per request on stdout (--no-access-log or access_log=false: off)",
}


def print_help(command: Command) -> None:
    print(command.usage())
    print(f"\n{command.help}\n")
    for positional in command.positionals:
        print(f"  {positional.name.upper():<10} {positional.help}")
    if command.options:
        table = Table(title="options (key=value or --key value, in any order)", show_lines=False)
        for column in ("key", "type", "default", "meaning"):
            table.add_column(column)
        for option in command.options:
            key = option.name + (f" ({option.short})" if option.short else "")
            table.add_row(key, _type_name(option.kind), "" if option.default is None else str(option.default),
                          option.help)
        console.print(table)


def _type_name(kind: object) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
