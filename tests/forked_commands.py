"""Run ``visionlab`` command lines at once, each in a process of its own, forked from this one after
its imports: as a cluster starts the same command in several array tasks (``test_sweeps.py``: two
searches on one Optuna study), with one import of torch and Lightning for all of them instead of
one each (seconds per process on a 2-core machine).

    python tests/forked_commands.py 'train|hparams_search=optuna|...' 'train|hparams_search=optuna|...'

Each argument is one command line, its words separated by ``|``. The exit code is 0 when every
command exited 0, else the first non-zero one."""

from __future__ import annotations

import os
import sys
import traceback

import optuna  # noqa: F401  (what a search imports, before the fork)

import visionlab.train  # noqa: F401
from visionlab.cli.main import main


def run_command(argv: list[str]) -> int:
    """``visionlab <argv>``'s exit code in this process."""
    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    children = []
    for command in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:  # leave without this process's exit handlers, which belong to the parent
            code = run_command(command.split("|"))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    sys.exit(next((code for code in codes if code), 0))
