"""`resnetlab train` and `resnetlab lr-find`: a Config from a recipe, a YAML file and `key=value` settings."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from .common import console
from .options import arguments_for


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import load_config, parse_overrides
    from ..training import train

    overrides = parse_overrides(args.settings)
    config = load_config(args.config, overrides)
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
    from ..config import load_config, parse_overrides
    from ..training.lr_find import lr_find

    config = load_config(args.config, parse_overrides(args.settings))
    result = lr_find(config, **arguments_for(lr_find, args))
    if result.suggestion is None:
        print("no clear descent in the loss; try more steps or a wider range (--start-lr, --end-lr)")
    else:
        print(f"suggested lr: {result.suggestion:.3g} (steepest descent of the loss)")
    if result.min_loss_lr is not None:
        print(f"lowest loss at lr {result.min_loss_lr:.3g} (a tenth of it is another common choice)")
    print(f"plot: {result.out_dir / 'lr_find.png'}")
    return 0
