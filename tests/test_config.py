"""Every option of every config group composes, and the cheap ones instantiate."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.batch_mixing import BatchMixing
from visionlab.nets.custom import shapes_net
from visionlab.train import instantiate_named

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "augment", "mixup", "backbone", "freeze", "model", "optimizer", "scheduler", "trainer",
          "logger", "callbacks", "experiment", "hparams_search", "tune", "debug"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
# shapes_net stages that train in epoch 0 under each freeze option's defaults (4 in all)
FIRST_EPOCH_TRAINABLE = {"none": 4, "feature_extraction": 0, "last_n": 2, "staged": 0,
                         "two_phase": 0, "gradual": 0, "lp_ft": 0}
REQUIRED = {
    ("data", "image_folder"): ["data.root=/somewhere"],
    ("backbone", "timm"): ["backbone.name=resnet18"],
}


def test_every_group_has_options():
    groups_with_options = {g for g, _ in OPTIONS}
    assert groups_with_options == set(GROUPS)


def _file_leaves(group: str, option: str) -> dict[str, object]:
    """Dotted keys and plain values an option file sets (``???`` and interpolations left out)."""
    path = CONF_DIR / group / f"{option}.yaml"
    body = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(path)).items()
            if k not in ("defaults", "hydra")}
    prefix = "" if "# @package _global_" in path.read_text() else f"{group}."
    leaves: dict[str, object] = {}

    def walk(node: dict, at: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
                walk(value, f"{at}{key}.")
            elif not (isinstance(value, str) and ("${" in value or value == "???")):
                leaves[f"{at}{key}"] = value

    walk(body, prefix)
    return leaves


def _writes_other_groups(group: str) -> bool:
    """Whether an option of ``group`` may set keys outside the group (``# @package _global_``)."""
    return any("# @package _global_" in path.read_text() for path in (CONF_DIR / group).glob("*.yaml"))


def _compositions() -> list[list[tuple[str, str]]]:
    """Every option once: an option of each group that writes only its own keys composes beside
    one of every other such group (15 compositions for their 66 options); an option of a group that may
    set other groups' keys (model, experiment, ...) composes alone."""
    own_keys = {group for group in GROUPS if not _writes_other_groups(group)}
    alone = [[(group, option)] for group, option in OPTIONS if group not in own_keys]
    together = {group: [o for g, o in OPTIONS if g == group] for group in GROUPS if group in own_keys}
    rows = max(len(options) for options in together.values())
    return [[(group, options[i]) for group, options in together.items() if i < len(options)]
            for i in range(rows)] + alone


COMPOSITIONS = _compositions()


@pytest.mark.parametrize("options", COMPOSITIONS,
                         ids=[",".join(f"{g}={o}" for g, o in c) for c in COMPOSITIONS])
def test_every_option_composes_with_its_values(make_cfg, options):
    required = [override for option in options for override in REQUIRED.get(option, [])]
    cfg = make_cfg(*(f"{group}={option}" for group, option in options), *required, tiny=False)
    for group, option in options:
        check_option(cfg, group, option)


def check_option(cfg: DictConfig, group: str, option: str) -> None:
    """The option's values are in ``cfg``, and what is cheap to build from its group builds."""
    for key, value in _file_leaves(group, option).items():
        composed = OmegaConf.select(cfg, key)
        if isinstance(composed, (DictConfig, ListConfig)):
            composed = OmegaConf.to_container(composed)
        assert composed == value, f"{group}={option}: {key}"
    if group == "optimizer":
        optimizer = instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(1))])
        assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    elif group == "augment":
        assert all(callable(t) for t in instantiate(cfg.augment)(32))
    elif group == "mixup":
        assert isinstance(instantiate(cfg.mixup), BatchMixing)
    elif group == "tune":
        assert isinstance(instantiate(cfg.tune, reference_lr=1e-3), L.Callback)
    elif group in ("logger", "callbacks"):
        kinds = (L.pytorch.loggers.Logger,) if group == "logger" else (L.Callback,)
        objects = instantiate_named(cfg[group])
        assert len(objects) == sum(1 for c in cfg[group].values() if c) and all(
            isinstance(o, kinds) for o in objects)
    elif group == "freeze":
        plan = instantiate(cfg.freeze)
        assert isinstance(plan, FreezePlan)
        backbone = shapes_net(input_size=32)
        if option == "auto":  # it cannot choose without being told whether the data are similar
            with pytest.raises(UserError, match="freeze.similar"):
                plan.prepare(backbone)
            return
        plan.prepare(backbone)
        stages = [s.name for s in backbone.stages(plan.granularity)]
        assert len(plan.trainable_stages(0, stages)) == FIRST_EPOCH_TRAINABLE[option]


def test_the_compositions_hold_every_option_once():
    assert sorted(option for composition in COMPOSITIONS for option in composition) == sorted(OPTIONS)


def test_default_config_is_the_offline_transfer_task(make_cfg):
    cfg = make_cfg(tiny=False)
    assert cfg.data.variant == "shapes_target"
    assert cfg.backbone.name == "shapes_net" and cfg.backbone.pretrained is True
    assert cfg.freeze._target_.endswith("FeatureExtraction")
    assert (cfg.monitor, cfg.mode, cfg.test_after_fit) == ("val/acc", "max", True)
    assert cfg.callbacks.early_stopping.monitor == "val/loss" and cfg.callbacks.early_stopping.patience == 3


@pytest.mark.parametrize("group", ["experiment", "hparams_search", "debug", "data", "freeze"])
def test_a_misspelt_option_of_any_group_is_an_error_listing_the_options(make_cfg, group):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match=f"Could not find '{group}/nope'") as info:
        make_cfg(f"{group}=nope")
    assert "Available options" in str(info.value)


def test_long_run_names_are_shortened_but_stay_distinct():
    from visionlab.resolvers import MAX_RUN_NAME, shorten

    short = "freeze=two_phase,optimizer.lr=0.0001"
    assert shorten(short) == short
    first, second = "a=1," * 80 + "lr=0.1", "a=1," * 80 + "lr=0.2"
    assert len(shorten(first)) == MAX_RUN_NAME and shorten(first) != shorten(second)
    assert shorten(first).startswith("a=1,a=1,")


@pytest.mark.parametrize("launcher, option, target", [
    ("joblib", "hydra.launcher.n_jobs=3",
     "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ("slurm", "hydra.launcher.gpus_per_node=4",
     "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
])
def test_sweep_launchers_compose(launcher, option, target):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"hydra/launcher={launcher}", option],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target
    if launcher == "slurm":  # one task per GPU, so Lightning's SLURM environment runs DDP
        assert cfg.hydra.launcher.tasks_per_node == 4 and cfg.hydra.launcher.nodes == 1


def test_loader_workers_start_with_the_platform_method_even_inside_a_joblib_job():
    import multiprocessing

    from visionlab.data.loading import worker_options

    context = worker_options(2)["multiprocessing_context"]
    assert context.get_start_method() == multiprocessing.get_all_start_methods()[0]
    assert "multiprocessing_context" not in worker_options(0)


@pytest.mark.parametrize("search", ["optuna", "optuna_finetune"])
def test_optuna_direction_follows_mode_and_the_study_is_stored_in_the_sweep_dir(search):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        overrides = [f"hparams_search={search}", "mode=min", "hydra.sweep.dir=/runs/sweep"]
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "minimize" and sweeper.storage == "sqlite:////runs/sweep/optuna.db"
    assert "optimizer.lr" in sweeper.params


def test_the_default_progress_bar_redraws_at_most_ten_times_a_second(make_cfg):
    from lightning.pytorch.callbacks import RichProgressBar

    callbacks = instantiate_named(make_cfg(tiny=False).callbacks)
    bars = [c for c in callbacks if isinstance(c, RichProgressBar)]
    assert len(bars) == 1 and 0 < bars[0].refresh_rate <= 10  # Lightning's 100 a second slows small models


def test_the_trainer_options_users_reach_for_take_no_plus_and_default_to_lightnings(make_cfg):
    import inspect

    import lightning as L

    cfg = make_cfg("trainer.limit_train_batches=20", "trainer.val_check_interval=0.5",
                   "trainer.log_every_n_steps=5", "trainer.max_steps=100", tiny=False)
    assert (cfg.trainer.limit_train_batches, cfg.trainer.val_check_interval) == (20, 0.5)
    lightning_defaults = inspect.signature(L.Trainer).parameters
    shipped = make_cfg(tiny=False).trainer
    for key in ("max_steps", "limit_train_batches", "limit_val_batches", "limit_test_batches",
                "val_check_interval", "num_sanity_val_steps"):
        assert shipped[key] == lightning_defaults[key].default, key


def test_the_console_shows_no_flops_no_v_num_and_short_metric_names(monkeypatch, capsys):
    from lightning.pytorch.callbacks import RichProgressBar

    from visionlab.callbacks.console import RunModelSummary, RunProgressBar

    logged = {"v_num": "hs=3", "train/loss_running": 1.25, "val/acc": 0.5}
    monkeypatch.setattr(RichProgressBar, "get_metrics", lambda self, trainer, module: dict(logged))
    assert RunProgressBar().get_metrics(None, None) == {"loss": 1.25, "val/acc": 0.5}
    columns = [(" ", ["0", "1"]), ("Name", ["backbone", "head"]), ("Type", ["Backbone", "ClassifierHead"]),
               ("Params", ["582 K", "1.5 K"]), ("Mode", ["train", "train"]), ("FLOPs", ["0", "0"])]
    RunModelSummary.summarize(columns, 584_000, 1_500, 2.3, {"train": 2, "eval": 0}, total_flops=0)
    printed = capsys.readouterr().out
    assert "FLOPs" not in printed and "backbone" in printed and "ClassifierHead" in printed
    assert "Trainable params: 1.5 K" in printed and "Frozen: 582 K" in printed
