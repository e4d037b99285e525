"""The `resnetlab` command: each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import os
import sys

from ..errors import UserError
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
