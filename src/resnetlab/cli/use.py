"""`resnetlab evaluate | predict | embed | explain`: a trained model (or published weights) on images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from ..errors import ConfigError
from .common import console, json_text, require_images, require_model
from .options import arguments_for


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..analysis.report import evaluate

    require_model(args)
    report = evaluate(args.model, **arguments_for(evaluate, args))
    folder = None
    if not args.no_report:
        default = Path(args.model).parent / f"eval-{Path(report.data).name}-{args.split}"
        folder = report.write(args.out or default)
    if args.json:
        # strict JSON: a class that was never predicted has a NaN precision
        print(json_text({**report.summary(), "report": str(folder) if folder else None}))
        return 0
    print("\n".join(report.headline()))
    for table in report.tables():
        console.print(table)
    for line in report.notes():
        print(line)
    if folder:
        print(f"report: {folder / 'report.html'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from ..data.images import expand_paths
    from ..deploy.predict import Predictor

    images = require_images(args, "predict")
    if args.json and args.csv:
        raise ConfigError("give one of --json and --csv")
    predictor = Predictor.from_file(args.model, **arguments_for(Predictor.from_file, args))
    predictions = predictor.predict_files(expand_paths(images), **arguments_for(Predictor.predict_files, args))
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

    images = require_images(args, "embed")
    predictor = Predictor.from_file(args.model, **arguments_for(Predictor.from_file, args))
    result = embed_files(predictor, images, **arguments_for(embed_files, args))
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

    images = require_images(args, "explain")
    predictor = Predictor.from_file(args.model, **arguments_for(Predictor.from_file, args))
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
