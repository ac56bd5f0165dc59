"""The ``visionlab`` subcommands: a registry filled by definition.

Each ``cli/<command>.py`` declares one command with :func:`command`: its name and help, the
arguments it takes, the checks made before torch loads (a missing path, a file of the wrong kind,
a bad value: one line in well under a second) and its run. :mod:`visionlab.cli.main` imports the
modules of this package, builds the parser from the registry and knows no command by name; a
command defined elsewhere (a test, a plugin module imported first) is served the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from visionlab.registry import Registry


@dataclass(frozen=True)
class Command:
    """One subcommand. ``check(args)`` returns the arguments ``run`` gets, resolved (a run folder's
    checkpoint, default output paths); without one, ``run`` gets them as parsed. ``hydra``: the
    arguments are Hydra overrides and flags (``-m``, ``--cfg``), handed on unparsed as
    ``args.overrides``. ``trailing_overrides``: ``key=value`` words after the options join
    ``args.overrides``."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], None]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    check: Callable[[argparse.Namespace], argparse.Namespace] | None = None
    hydra: bool = False
    trailing_overrides: bool = False


COMMANDS: Registry[Command] = Registry("visionlab command")


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None,
            check: Callable[[argparse.Namespace], argparse.Namespace] | None = None, hydra: bool = False,
            trailing_overrides: bool = False) -> Callable:
    """Decorator on a command's run function: registers the :class:`Command` called ``name``."""
    def add(run: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
        COMMANDS.register(name)(Command(name, help, run, arguments, check, hydra, trailing_overrides))
        return run

    return add
