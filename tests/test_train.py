"""End-to-end behaviour of visionlab.train.run on tiny shapes data."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from visionlab.errors import UserError
from visionlab.train import run


def _backbone_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


def test_run_writes_loadable_checkpoints_and_returns_metric(make_cfg, capfd):
    cfg = make_cfg("backbone.pretrained=false")
    value = run(cfg)
    table = capfd.readouterr().out  # Lightning's table of the test results: test metrics only
    assert "test/acc" in table and " epoch " not in table
    assert "Trainable params" not in table  # callbacks.model_summary=null: no summary, not Lightning's
    run_dir = Path(cfg.paths.output_dir)
    assert 0.0 <= value <= 1.0
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)  # plain values only
    hp = checkpoint["hyper_parameters"]
    assert hp["class_names"] == ["arrow", "chevron", "crescent", "diamond", "heart", "tshape"]
    assert hp["num_classes"] == 6 and hp["head"]["pool"] == "avg"
    assert checkpoint["epoch"] == 1
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    assert sorted(rows[0]).count("val/acc") == 1
    (test_row,) = [row for row in rows if row.get("test/acc")]
    assert float(test_row["test/acc"]) == pytest.approx(value)
    grid = run_dir / "train_batch.png"  # augment=none: named for what it is
    assert grid.is_file() and grid.stat().st_size > 1000 and not (run_dir / "augmented_batch.png").exists()


@pytest.mark.parametrize("augment", ["flip_crop", "none"])
def test_only_an_augmented_batch_is_shown_in_tensorboard_beside_the_training_curves(make_cfg, augment):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg(f"augment={augment}", "trainer.max_epochs=1", "test_after_fit=false", "logger=tensorboard")
    run(cfg)
    name = "augmented_batch" if augment != "none" else "train_batch"
    assert (Path(cfg.paths.output_dir) / f"{name}.png").is_file()
    events = Path(cfg.paths.output_dir) / "tensorboard"  # outside a Hydra job the run name is empty
    images = EventAccumulator(str(events), size_guidance={"images": 0}).Reload().Tags()["images"]
    # the plain batch is the same picture in every run on the data: it stays out of Time Series
    assert images == (["train/augmented_batch"] if augment != "none" else [])


@pytest.mark.slow
def test_default_job_transfers_the_shipped_backbone_well_above_chance(make_cfg):
    # The real default config (shapes_target, 6 classes: chance is 0.17), only shortened.
    cfg = make_cfg("trainer.max_epochs=6", "trainer.enable_progress_bar=false", "logger=csv",
                   "callbacks.progress_bar=null", "callbacks.model_summary=null", tiny=False)
    assert run(cfg) > 0.45


def test_a_display_set_to_null_is_off_and_a_disabled_one_is_dropped():
    from omegaconf import OmegaConf

    from visionlab.callbacks.console import RunModelSummary, RunProgressBar
    from visionlab.train import settle_displays

    bar, summary = RunProgressBar(), RunModelSummary()
    kept, switches = settle_displays([bar, summary], OmegaConf.create({"enable_progress_bar": False}))
    assert kept == [summary] and switches == {}  # Lightning refuses a bar beside enable_progress_bar=false
    kept, switches = settle_displays([], OmegaConf.create({"enable_progress_bar": True}))
    assert kept == [] and switches == {"enable_progress_bar": False, "enable_model_summary": False}


def test_resume_continues_at_the_next_epoch(make_cfg):
    first = make_cfg("backbone.pretrained=false", "trainer.max_epochs=1", "test_after_fit=false",
                     "optimized_metric=val/acc")
    run(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed = make_cfg("backbone.pretrained=false", "trainer.max_epochs=3", "test_after_fit=false",
                       "optimized_metric=val/acc", f"ckpt_path={last}")
    resumed.paths.output_dir = str(Path(first.paths.output_dir).parent / "resumed")
    run(resumed)
    checkpoint = torch.load(Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt",
                            map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 2  # epochs 1 and 2 ran after the restored epoch 0
    assert checkpoint["global_step"] == 3 * 5  # 36 training images in batches of 8, 3 epochs


def test_feature_extraction_leaves_backbone_bit_identical(make_cfg):
    cfg = make_cfg("backbone.pretrained=false", "freeze=feature_extraction", "seed=3")
    run(cfg)
    ckpts = Path(cfg.paths.output_dir) / "checkpoints"
    L.seed_everything(3, workers=True)  # run() seeds, then builds the backbone first
    fresh = instantiate(cfg.backbone).state_dict()
    trained = _backbone_state(ckpts / "last.ckpt")
    assert set(trained) == {f"backbone.{k}" for k in fresh}
    for key, value in fresh.items():
        if "num_batches_tracked" in key:
            continue
        assert torch.equal(trained[f"backbone.{key}"], value), key


def test_bf16_mixed_precision_trains_on_cpu(make_cfg):
    # bf16 convolutions are emulated on CPU (slow): 32 px inputs, two batches
    cfg = make_cfg("backbone.pretrained=false", "backbone.input_size=32", "freeze=none",
                   "trainer.precision=bf16-mixed", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                   "trainer.limit_val_batches=1", "test_after_fit=false", "optimized_metric=val/loss",
                   "seed=5")
    assert math.isfinite(run(cfg))
    L.seed_everything(5, workers=True)  # run() seeds, then builds the backbone first
    fresh = instantiate(cfg.backbone).state_dict()
    trained = _backbone_state(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    key = "body.block1.conv1.conv.weight"
    assert trained[f"backbone.{key}"].dtype == torch.float32  # bf16 autocast, fp32 master weights
    assert not torch.equal(trained[f"backbone.{key}"], fresh[key])


def test_missing_optimized_metric_warns_in_a_run_and_fails_a_sweep(make_cfg, caplog, monkeypatch):
    cfg = make_cfg("trainer.max_epochs=1", "optimized_metric=val/nope")
    assert run(cfg) is None  # test_after_fit=false + optimized_metric=test/acc is the same case
    assert "optimized_metric='val/nope' was not logged; available:" in caplog.text
    monkeypatch.setattr("visionlab.train.in_sweep", lambda: True)
    with pytest.raises(UserError, match=r"optimized_metric='val/nope'.*available: .*test/acc.*the sweep"):
        run(cfg)


def test_missing_ckpt_path_is_a_user_error(make_cfg, tmp_path):
    cfg = make_cfg(f"ckpt_path={tmp_path / 'missing.ckpt'}")
    with pytest.raises(UserError, match="missing.ckpt does not exist"):
        run(cfg)


def test_pretrain_recipe_exports_a_backbone_that_loads_as_weights(make_cfg):
    cfg = make_cfg("experiment=pretrain_shapes", "trainer.max_epochs=1")
    run(cfg)
    exported = Path(cfg.paths.output_dir) / "backbone.safetensors"
    best = _backbone_state(next((Path(cfg.paths.output_dir) / "checkpoints").glob("epoch_*.ckpt")))
    backbone = instantiate(cfg.backbone, pretrained=False, weights=str(exported))
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, best[f"backbone.{key}"]), key


def test_shipped_shapes_net_weights_load_and_are_small():
    from visionlab.nets.factory import create_backbone
    from visionlab.nets.sources import BACKBONE_SOURCES

    shipped = BACKBONE_SOURCES["custom"].shipped["shapes_net"]
    assert shipped.is_file() and shipped.stat().st_size <= 5 * 2**20
    pretrained = create_backbone("shapes_net", "custom", pretrained=True).state_dict()
    scratch = create_backbone("shapes_net", "custom", pretrained=False).state_dict()
    key = "body.block1.conv1.conv.weight"
    assert not torch.equal(pretrained[key], scratch[key])
    assert pretrained["body.block1.conv1.bn.running_var"].ne(1).any()  # trained BN statistics


def test_shapes_is_not_trivial_for_a_small_cnn_in_one_epoch(make_cfg):
    # Learnable: the shipped shapes_net reached 93% test accuracy on shapes_source (README).
    # One epoch from scratch on 14 classes measured 0.08-0.10 (chance 0.07): far from solved.
    cfg = make_cfg("data=shapes", "data.train_per_class=30", "data.val_per_class=10", "data.batch_size=32",
                   "data.image_size=32", "backbone.input_size=32",
                   "backbone.pretrained=false", "freeze=none", "augment=none", "trainer.max_epochs=1",
                   "test_after_fit=false", "optimized_metric=val/acc")
    assert run(cfg) < 0.5


class _RecordingDataModule:
    """Records the order of prepare_data / setup calls."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def prepare_data(self) -> None:
        self.calls.append("prepare_data")

    def setup(self, stage: str) -> None:
        self.calls.append(f"setup:{stage}")


class _FakeStrategy:
    def __init__(self, env, calls: list) -> None:
        self.cluster_environment, self.calls = env, calls

    def setup_environment(self) -> None:
        self.calls.append("setup_environment")

    def barrier(self, name: str) -> None:
        self.calls.append(f"barrier:{name}")


class _FakeTrainer:
    def __init__(self, env, world_size: int, local_rank: int, calls: list) -> None:
        self.strategy = _FakeStrategy(env, calls)
        self.world_size, self.local_rank = world_size, local_rank


@pytest.mark.parametrize(
    "launcher, local_rank, expected",
    [
        ("lightning", 0, ["prepare_data", "setup:fit"]),
        ("lightning", 1, ["setup:fit"]),  # a process Lightning started: the data is already there
        ("torchrun", 0, ["setup_environment", "prepare_data", "barrier:prepare_data", "setup:fit"]),
        ("torchrun", 1, ["setup_environment", "barrier:prepare_data", "setup:fit"]),
    ],
)
def test_data_is_prepared_once_per_node_and_set_up_on_every_process(launcher, local_rank, expected):
    from lightning.fabric.plugins.environments import LightningEnvironment, TorchElasticEnvironment

    from visionlab.train import prepare_and_setup

    env = LightningEnvironment() if launcher == "lightning" else TorchElasticEnvironment()
    calls: list = []
    prepare_and_setup(_RecordingDataModule(calls), _FakeTrainer(env, 2, local_rank, calls))
    assert calls == expected
