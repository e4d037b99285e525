"""The `resnetlab` command: each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import ConfigError, UserError, did_you_mean
from .common import print_settings_help
from .options import Command
from .parser import commands, print_help

__all__ = ["commands", "main", "parse_command"]


def parse_command(argv: list[str]) -> tuple[Command, argparse.Namespace]:
    """The subcommand of `argv` and its parsed words (ConfigError for an unknown command or option)."""
    table = commands()
    name = argv[0]
    if name not in table:
        raise ConfigError(f"unknown command {name!r}{did_you_mean(name, table)}; commands: {', '.join(table)}")
    command = table[name]
    return command, command.parse(argv[1:])


def _print_commands() -> None:
    print("usage: resnetlab [--version] COMMAND [key=value | --key value ...]\n\n"
          "Residual networks for image classification.\n\ncommands:")
    for command in commands().values():
        print(f"  {command.name:<15} {command.help}")
    print("\n`resnetlab COMMAND --help` lists a command's options.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help"):
            _print_commands()
            return 0 if argv else 2
        if argv[0] == "--version":
            print(f"resnetlab {__version__}")
            return 0
        command, args = parse_command(argv)
        if args.help:
            print_help(command)
            if command.name == "train":
                print_settings_help()
            return 0
        return command.run(args)
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
