"""The ``visionlab`` command: one subcommand per module of this package (:mod:`visionlab.cli.commands`)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import visionlab.cli
from visionlab.cli.commands import COMMANDS
from visionlab.cli.errors import EXIT_USER_ERROR, exit_on_user_error


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one ``error:`` line (the command's name and the problem) and
    exit code 2, as every other mistake; ``-h`` still prints the full usage."""

    def error(self, message: str):
        """Print ``error: <prog>: <message>`` and exit 2."""
        print(f"error: {self.prog}: {message} (see {self.prog} -h)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def load_commands() -> None:
    """Import every module of :mod:`visionlab.cli`: each registers the command it defines. They import
    only what their checks need; torch and Lightning load inside the runs."""
    for module in pkgutil.iter_modules(visionlab.cli.__path__):
        importlib.import_module(f"visionlab.cli.{module.name}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per registered command."""
    load_commands()
    parser = OneLineParser(prog="visionlab", description="Transfer learning and GANs with Lightning and "
                                                         "Hydra: train, compare and use trained models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name, command in COMMANDS.items():
        subparser = sub.add_parser(name, help=command.help)
        if command.hydra:
            subparser.add_argument("overrides", nargs=argparse.REMAINDER,
                                   help="Hydra overrides and flags, as for train.py (e.g. -m lr=1e-3,1e-4)")
        elif command.arguments is not None:
            command.arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``visionlab`` console script: parse, check before torch loads, run."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv[:1] and argv[0] in COMMANDS and COMMANDS[argv[0]].hydra:  # Hydra parses the rest (-m, --cfg)
        with exit_on_user_error():
            COMMANDS[argv[0]].run(argparse.Namespace(command=argv[0], overrides=argv[1:]))
        return
    args, unknown = parser.parse_known_args(argv)
    command = COMMANDS[args.command]
    if command.trailing_overrides and all("=" in a and not a.startswith("-") for a in unknown):
        args.overrides = [*args.overrides, *unknown]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    with exit_on_user_error():
        command.run(command.check(args) if command.check is not None else args)


if __name__ == "__main__":
    main()
