"""What a composed run downloads, and ``visionlab prefetch``: fetch it before the run goes offline.

:func:`run_files` lists the :class:`~visionlab.downloads.RemoteFile` a run of ``cfg`` loads from
the network: its backbone's published weights (when the model uses a backbone), its dataset's
files (torchvision datasets) and the Inception weights of ``model.fid_features=inception``.
A run checks them before it builds anything (:func:`visionlab.downloads.require_available`).

:func:`prefetch` composes the runs of a command line exactly as ``train.py`` would (with ``-m``
every job of the sweep: the basic sweeper's lists and ranges, and the ``choice`` parameters of
an Optuna search), fetches what is not cached yet into the caches the runs read, and prints what
is where and how large. A job that does not compose (an unknown timm model) is reported in one
line and the others are fetched all the same; the exit is then non-zero.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from visionlab.downloads import PROBE_SECONDS, RemoteFile, reachable, use_cache_dir
from visionlab.errors import UserError, first_line
from visionlab.metrics.generative import inception_file
from visionlab.modules.base import module_class
from visionlab.nets.factory import backbone_files


def plain_values(node: DictConfig) -> dict:
    """A config group's values as keyword arguments (``_target_`` and other ``_`` keys dropped)."""
    return {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not str(k).startswith("_")}


def run_files(cfg: DictConfig) -> list[RemoteFile]:
    """The files a run of ``cfg`` downloads (module docstring); a UserError for a backbone the
    source does not know."""
    from hydra.utils import get_class

    files: list[RemoteFile] = []
    if module_class(cfg.model).needs_backbone(cfg.model):
        files += backbone_files(**plain_values(cfg.backbone))
    data_class = get_class(cfg.data._target_)
    if hasattr(data_class, "remote_files"):
        files += data_class.remote_files(**plain_values(cfg.data))
    if cfg.model.get("fid_features") == "inception":
        files.append(inception_file())
    return files


def sweep_jobs(overrides: list[str], hydra_params: dict[str, str]) -> list[list[str]]:
    """The override lists of every job ``-m overrides`` runs: the basic sweeper's product of lists
    and ranges, times the ``choice(...)`` parameters of a sweeper's ``params`` (an Optuna search:
    its intervals are numbers and download nothing)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    parser = OverridesParser.create()
    searched = [f"{key}={value}" for key, value in hydra_params.items()]
    discrete = [o for o in parser.parse_overrides(searched)
                if isinstance(o.value(), (ChoiceSweep, RangeSweep)) and o.key_or_group not in
                {p.split("=")[0] for p in overrides}]
    batches = BasicSweeper.split_arguments([*parser.parse_overrides(overrides), *discrete], None)
    return [job for batch in batches for job in batch]


def compose_run(conf_dir: Path, overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``train.py`` composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=return_hydra_config)


def writable_folder(path: Path) -> None:
    """UserError naming ``path`` unless files can be created in it (it is made if missing)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"cannot write to {path} ({err.strerror or first_line(err)}): make it writable, or "
                        "point the cache elsewhere (paths.cache_dir=<folder>, HF_HOME, TORCH_HOME)") from None


def size_of(path: Path) -> int:
    """Bytes under ``path`` (a file, or a dataset's folder)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def human_size(size: float) -> str:
    """``12.3 MB``."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("kB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


@dataclass
class Fetched:
    """One file of the prefetch report: what, where it now is, its size, and whether it was fetched
    now (False: it was cached already)."""

    what: str
    where: Path
    size: int
    fetched: bool


def fetch_file(remote: RemoteFile) -> Fetched:
    """``remote`` in its cache: fetched unless it is there; a full disk or a refused write is a
    UserError naming the folder."""
    cache_folder = remote.folder
    found = remote.cached()
    fetched = found is None
    if fetched:
        writable_folder(cache_folder)
        if not reachable(remote.host):
            raise UserError(f"{remote.what} is not cached, and {remote.host} did not answer within "
                            f"{PROBE_SECONDS:g} s: prefetch on a machine with network (a cluster's login "
                            "node)")
        print(f"fetching {remote.what} from {remote.url}", flush=True)
        try:
            remote.fetch()
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                raise UserError(f"could not write {remote.what} to {cache_folder}: {os.strerror(err.errno)} "
                                "(free space there, or point the cache elsewhere: paths.cache_dir=<folder>)"
                                ) from None
            raise UserError(f"could not fetch {remote.what} from {remote.url}: {first_line(err)}") from None
        found = remote.cached()
        if found is None:
            raise UserError(f"{remote.what} was fetched from {remote.url} but is not where the run looks "
                            f"({cache_folder}): is HF_HUB_OFFLINE set, or the cache redirected?")
    return Fetched(remote.what, found, size_of(found), fetched)


def prefetch(conf_dir: Path, overrides: list[str], multirun: bool) -> int:
    """Fetch what the run (``multirun``: every job of the sweep) of ``overrides`` downloads; print
    the report; return the number of jobs that did not compose."""
    from hydra.errors import CompactHydraException

    from visionlab.errors import hydra_error_line

    jobs = [overrides]
    if multirun:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        fixed = [o.input_line for o in OverridesParser.create().parse_overrides(overrides)
                 if not o.is_sweep_override()]
        try:
            base = compose_run(conf_dir, fixed, return_hydra_config=True)
        except CompactHydraException as err:
            raise UserError(hydra_error_line(err)) from None
        jobs = sweep_jobs(overrides, dict(base.hydra.sweeper.get("params") or {}))
    wanted: dict[tuple[str, Path], RemoteFile] = {}  # by source and destination
    failed = 0
    for job in jobs:
        try:
            cfg = compose_run(conf_dir, job)
            use_cache_dir(cfg.paths.get("cache_dir"))
            files = run_files(cfg)
        except (UserError, CompactHydraException) as err:
            failed += 1
            line = hydra_error_line(err) if isinstance(err, CompactHydraException) else str(err)
            print(f"error: job {' '.join(job) or '(no overrides)'}: {line}", flush=True)
            continue
        for remote in files:
            wanted.setdefault((remote.url, remote.folder), remote)
    report = [fetch_file(remote) for remote in wanted.values()]
    print_report(report, len(jobs))
    return failed


def print_report(report: list[Fetched], jobs: int) -> None:
    """A table of the files, where they are and how large; the total."""
    runs = "run" if jobs == 1 else f"{jobs} runs"
    if not report:
        verb = "downloads" if jobs == 1 else "download"
        print(f"prefetch: the {runs} {verb} nothing (local backbones, weights files and datasets only)")
        return
    width = max(len(entry.what) for entry in report)
    for entry in report:
        state = "fetched" if entry.fetched else "cached"
        print(f"  {entry.what:<{width}}  {state:<7}  {human_size(entry.size):>9}  {entry.where}")
    total = sum(entry.size for entry in report)
    fetched = sum(entry.fetched for entry in report)
    print(f"prefetch: {len(report)} file(s) for the {runs}, {human_size(total)}; {fetched} fetched now, "
          f"{len(report) - fetched} already cached")
