"""Every option of every config group composes, and the cheap ones instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from visionlab.train import instantiate_named

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "augment", "backbone", "freeze", "model", "optimizer", "scheduler", "trainer",
          "logger", "callbacks", "experiment", "hparams_search", "debug"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
REQUIRED = {
    ("data", "image_folder"): ["data.root=/somewhere"],
    ("backbone", "timm"): ["backbone.name=resnet18"],
}


def test_every_group_has_options():
    groups_with_options = {g for g, _ in OPTIONS}
    assert groups_with_options == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes(make_cfg, group, option):
    cfg = make_cfg(f"{group}={option}", *REQUIRED.get((group, option), []), tiny=False)
    assert cfg.seed == 42 and cfg.monitor
    if group == "optimizer":
        optimizer = instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(1))])
        assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    elif group == "augment":
        assert isinstance(list(instantiate(cfg.augment)(32)), list)
    elif group in ("logger", "callbacks"):
        for obj in instantiate_named(cfg[group]):
            assert obj is not None
    elif group == "freeze":
        assert hasattr(instantiate(cfg.freeze), "trainable_stages")


def test_default_config_is_the_offline_transfer_task(make_cfg):
    cfg = make_cfg(tiny=False)
    assert cfg.data.variant == "shapes_target"
    assert cfg.backbone.name == "shapes_net" and cfg.backbone.pretrained is True
    assert cfg.freeze._target_.endswith("FeatureExtraction")
    assert (cfg.monitor, cfg.mode, cfg.test_after_fit) == ("val/acc", "max", True)
    assert cfg.callbacks.early_stopping.monitor == "val/loss" and cfg.callbacks.early_stopping.patience == 3
