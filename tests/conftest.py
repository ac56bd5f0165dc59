"""Shared fixtures: composing the real Hydra config with test-sized overrides."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# Overrides that make any classifier run tiny: few images, few batches, no progress bar.
TINY = [
    "data.train_per_class=6",
    "data.val_per_class=4",
    "data.test_per_class=4",
    "data.batch_size=8",
    "data.num_workers=0",  # worker processes cost more than they save on tiny data
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.enable_progress_bar=false",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.augmented_batch.max_images=4",  # the grid is still drawn and written, from 4 images
    "logger=csv",
]


def pytest_configure(config: pytest.Config) -> None:
    """Import Lightning before any test captures output (its console handler binds
    ``sys.stderr`` at import), in each process that runs tests. The xdist controller only
    hands out tests: skipping the import there saves seconds before the workers start."""
    is_xdist_controller = bool(config.getoption("numprocesses", None)) and not hasattr(config, "workerinput")
    if not is_xdist_controller:
        import lightning  # noqa: F401


def pytest_collection_finish(session: pytest.Session) -> None:
    """Exempt what the imports created (torch, Lightning, timm: millions of objects that live
    as long as the process) from the garbage collector's full passes, which otherwise walk
    them all again, a quarter of a second each, a dozen times per worker.

    Then collect less often: a composed Hydra config is tens of thousands of short-lived OmegaConf
    nodes, and at Python's default thresholds (700, 10, 10) the collector ran 6,500 times for 6.4 s
    of the 73 s that test_config, test_mistakes, test_experiments and test_gan take in one process;
    at (50 000, 20, 100) it runs 1,100 times for 3.3 s, with no higher peak memory."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exempt every object left from the interpreter's last garbage collections: over torch's and
    Lightning's object graphs they take seconds per process at exit, and each xdist worker's
    exit delays the end of the run. Nothing runs after this hook that needs them collected."""
    gc.freeze()


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Run the tiny test models on one thread: on a shared 2-core machine a second thread
    mostly waits for the first and makes the suite several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One data directory for the whole session, so each shapes variant is generated once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """Compose ``conf/train.yaml`` with overrides, writing outputs under ``tmp_path``."""

    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*(TINY if tiny else []), *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.data_dir = str(data_dir)
        return cfg

    return _make


@pytest.fixture
def in_project(tmp_path, monkeypatch) -> Iterator[Path]:
    """Run ``visionlab`` commands (``visionlab.cli.main.main``) in this process from
    ``tmp_path`` (data and outputs there).

    A subprocess would pay several seconds of imports per test; one test in test_cli.py keeps
    the real process exit for the user-error path.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VISIONLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cmd_train sets it for Hydra
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield tmp_path
    for handler in root.handlers:  # Hydra's console and file handlers hold this test's streams
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


# A truncated backbone (the plan cuts shapes_net after block3) must be rebuilt as trained.
RUN_OVERRIDES = [*TINY, "trainer.max_epochs=1", "freeze=feature_extraction", "freeze.truncate_after=block3",
                 "data.cache_features=false"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir):
    """A tiny classifier run laid out as train.py writes it (checkpoints/ beside .hydra/); once
    per test process, since xdist may hand this module's tests to a worker between others."""
    import yaml

    from visionlab.train import run  # not at the top: the xdist controller never imports Lightning

    run_dir = tmp_path_factory.mktemp("run")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=RUN_OVERRIDES)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.data_dir = str(data_dir)
    test_acc = run(cfg)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(RUN_OVERRIDES))
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # as Hydra writes it beside the overrides
    best = next((run_dir / "checkpoints").glob("epoch_*.ckpt"))
    return run_dir, best, test_acc, [f"paths.data_dir={data_dir}"]
