"""Run functions at once, each in a process of its own forked from the test process: as torchrun
starts the ranks of a DDP job (``test_ddp.py``) or a cluster starts the same command in several
array tasks (``test_sweeps.py``: two searches on one Optuna study).

Forked, the processes start with torch and Lightning already imported: a new interpreter would pay
5-6 s of CPU for those imports in each, the largest cost of these tests on a 2-core machine. The
test processes fork already (a DataLoader's workers), and they run torch on one thread, so no
OpenMP pool is left in a state a child cannot use.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


def run_forked(tasks: list[Callable[[], None]], log: Path, timeout: float = 300.0) -> list[int]:
    """Run every task in a child process of its own, all at once, and wait for them.

    Returns their exit codes in order: 0 when the task returned, a ``SystemExit``'s code, 1 when it
    raised (the traceback is in ``log``), -9 when it was still running after ``timeout`` seconds
    (it is killed, with whatever it started: e.g. one DDP rank waiting for another that failed).
    Everything the children print goes to ``log``."""
    children = []
    for task in tasks:
        pid = os.fork()
        if pid == 0:
            _run_child(task, log)  # never returns
        children.append(pid)
    codes: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(codes) < len(children) and time.monotonic() < deadline:
        for pid in children:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    for pid in children:
        if pid not in codes:
            os.killpg(pid, signal.SIGKILL)
            codes[pid] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return [codes[pid] for pid in children]


def _run_child(task: Callable[[], None], log: Path) -> None:
    """In the child: a session of its own (so a timeout kills all it started), output to ``log``,
    the task, then exit without the test process's exit handlers (pytest's, Lightning's), which are
    the parent's to run."""
    code = 1
    try:
        os.setsid()
        out = open(log, "a", buffering=1)  # noqa: SIM115  (open until os._exit)
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        sys.stdout = sys.stderr = out
        task()
        code = 0
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)
