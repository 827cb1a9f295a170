"""The `ics` command line: one sub-command per module under ``ics.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed arguments and returning an exit
status. Registering a command is cheap; each command imports its heavy dependencies
inside its handler, so that ``ics rate`` does not pay for the SIP stack or the
web framework.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

#: Command modules, in the order ``ics --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "ics.commands.rate",
    "ics.commands.rerate",
    "ics.commands.config",
    "ics.commands.api",
    "ics.commands.serve",
    "ics.commands.prompts",
    "ics.commands.accounts",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ics", description="Inmate calling services: call controller and rating engine."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`ics rate --json | head`): not an error of ours.
        # Point stdout at /dev/null so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
