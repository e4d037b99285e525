"""`resnetlab evaluate | predict | embed | explain`: a trained model (or published weights) on images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from ..errors import ConfigError
from .common import console, count_option, json_text, key_values, split_model


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..analysis.report import evaluate

    args.extra = split_model(args, [*([args.model] if args.model else []), *args.extra])
    key_values(args.extra, {"data": "data", "split": "split", "data_dir": "data_dir", "device": "device",
                             "batch_size": "batch_size", "workers": "workers", "tta": "tta", "out": "out",
                             "ema": "ema", "backend": "backend", "precision": "precision", "verify": "verify",
                             "path_column": "path_column", "label_column": "label_column"}, args)
    from ..config import coerce

    report = evaluate(args.model, args.data, split=args.split, data_dir=args.data_dir, tta=args.tta,
                      batch_size=count_option("batch_size", args.batch_size, 1), device=args.device,
                      workers=None if args.workers is None else count_option("workers", args.workers, 0),
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
        print(json_text({**report.summary(), "report": str(folder) if folder else None}))
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


def cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from ..data.images import expand_paths
    from ..deploy.predict import Predictor

    words = split_model(args, [args.model, *args.images])
    images = [w for w in words if "=" not in w or Path(w).exists()]  # a file may have "=" in its name
    key_values([w for w in words if w not in images], {
        "topk": "topk", "batch_size": "batch_size", "workers": "workers", "device": "device", "backend": "backend",
        "precision": "precision", "calibration": "calibration"}, args)
    if not images:
        raise ConfigError("give the image files, folders or globs to predict")
    predictor = Predictor.from_file(args.model, device=args.device,
                                    batch_size=count_option("batch_size", args.batch_size, 1),
                                    backend=args.backend, precision=args.precision, weights=args.weights,
                                    calibration=args.calibration)
    paths = expand_paths(images)
    workers = None if args.workers is None else count_option("workers", args.workers, 0)
    predictions = predictor.predict_files(paths, topk=count_option("topk", args.topk, 1), workers=workers)
    failures = [p for p in predictions if p.error]
    if args.json:
        print(json_text([p.to_dict() for p in predictions], indent=2))
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
    from ..deploy.embed import embed_files
    from ..deploy.predict import Predictor

    words = split_model(args, [args.model, *args.images])
    images = [w for w in words if "=" not in w]
    key_values([w for w in words if "=" in w], {"out": "out", "batch_size": "batch_size", "workers": "workers",
                                                  "device": "device"}, args)
    if not images:
        raise ConfigError("give the image files, folders or globs to embed")
    predictor = Predictor.from_file(args.model, device=args.device,
                                    batch_size=count_option("batch_size", args.batch_size, 1),
                                    weights=args.weights)
    workers = None if args.workers is None else count_option("workers", args.workers, 0)
    result = embed_files(predictor, images, workers=workers)
    out = result.save(args.out)
    labelled = f", labels of {len(result.class_names)} class folders" if result.labels is not None else ""
    print(f"wrote {out}: {result.features.shape[0]} x {result.features.shape[1]} features{labelled}")
    for path, reason in result.failed:
        print(f"error: {path}: {reason}", file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_files
    from ..data.images import expand_paths
    from ..deploy.predict import Predictor

    words = split_model(args, [args.model, *args.images])
    images = [w for w in words if "=" not in w or Path(w).exists()]  # a file may have "=" in its name
    key_values([w for w in words if w not in images], {"out": "out", "class": "class_name",
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
