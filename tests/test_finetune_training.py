"""Freeze plans in real (tiny) Lightning runs: frozen means frozen, resume, schedulers, logging."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from tiny import STAGES, Recorder, TensorDataModule, tiny_model, tiny_trainer

from visionlab.callbacks.learning_rates import EffectiveLearningRates
from visionlab.finetune.auto import AutoPlan
from visionlab.finetune.lp_ft import LinearProbeFineTune
from visionlab.finetune.plans import Gradual, LastN, Staged, TwoPhase
from visionlab.train import run


def test_frozen_stages_are_bit_identical_and_run_without_autograd(tmp_path):
    model = tiny_model(LastN(n=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    has_grad_fn: dict[str, set[bool]] = {"block3": set(), "block4": set()}

    def record(module, inputs, out, name):
        if module.training:
            has_grad_fn[name].add(out.grad_fn is not None)

    for name in has_grad_fn:
        model.backbone.body.get_submodule(name).register_forward_hook(functools.partial(record, name=name))
    tiny_trainer(tmp_path, 2).fit(model, datamodule=TensorDataModule())
    after = model.state_dict()
    for key, value in before.items():
        frozen = key.startswith(("backbone.body.block1", "backbone.body.block2", "backbone.body.block3"))
        if frozen:  # weights and BatchNorm running statistics alike
            assert torch.equal(after[key], value), key
        elif key.endswith("weight"):
            assert not torch.equal(after[key], value), key
    assert has_grad_fn == {"block3": {False}, "block4": {True}}


def test_epoch_logs_trainable_counts_stage_names_and_every_groups_effective_lr(tmp_path):
    model = tiny_model(Gradual(every=1, layer_decay=0.5))
    logger = CSVLogger(tmp_path, name="", version="")
    trainer = tiny_trainer(tmp_path, 2, EffectiveLearningRates(), logger=logger)
    trainer.fit(model, datamodule=TensorDataModule())
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    counts = [float(r["freeze/trainable_stages"]) for r in rows if r.get("freeze/trainable_stages")]
    params = [float(r["freeze/trainable_params"]) for r in rows if r.get("freeze/trainable_params")]
    assert counts == [0.0, 1.0] and params[0] < params[1]
    lrs = [{k: float(v) for k, v in r.items() if k.startswith("lr-Adam/") and v} for r in rows]
    lrs = [row for row in lrs if row]
    decayed = {f"lr-Adam/backbone/{s}": 1e-2 * 0.5 ** (4 - i) for i, s in enumerate(STAGES)}
    frozen = dict.fromkeys(decayed, 0.0)  # frozen stages train at 0, whatever their group's lr
    assert lrs[0] == pytest.approx({"lr-Adam/head": 1e-2, **frozen})
    assert lrs[1] == pytest.approx({"lr-Adam/head": 1e-2, **frozen,
                                    "lr-Adam/backbone/block4": decayed["lr-Adam/backbone/block4"]})


SCHEDULERS = ["none", "cosine", "step", "plateau", "onecycle"]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_runs_staged_to_the_end_and_two_phase_lowers_lr_tenfold(make_cfg, tmp_path, name):
    cfg = make_cfg(f"scheduler={name}", "trainer.max_epochs=3",
                   *(["scheduler.scheduler.patience=100"] if name == "plateau" else []))
    factory = instantiate(cfg.scheduler.scheduler) if cfg.scheduler.scheduler else None
    runs = {}
    for label, plan in (("staged", Staged({0: "head", 1: 1, 2: "all"})), ("two_phase", TwoPhase(epochs=2))):
        model = tiny_model(plan, scheduler=factory, interval=cfg.scheduler.interval, monitor=cfg.monitor)
        recorder = Recorder()
        trainer = tiny_trainer(tmp_path / label, 3, recorder)
        trainer.fit(model, datamodule=TensorDataModule())
        assert trainer.current_epoch == 3 and len(trainer.optimizers[0].param_groups) == 5
        runs[label] = recorder
    staged, two_phase = runs["staged"], runs["two_phase"]
    assert [len({n.split(".")[0] for n in staged.trainable[e]}) for e in range(3)] == [0, 1, 4]
    for epoch in range(3):
        factor = 0.1 if epoch >= 2 else 1.0
        expected = {g: lr * factor for g, lr in staged.lrs[epoch].items()}
        assert two_phase.lrs[epoch] == pytest.approx(expected, rel=1e-9), epoch


def _last_checkpoint(dirpath: Path) -> ModelCheckpoint:
    return ModelCheckpoint(dirpath=dirpath, filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)


def test_lp_ft_plateau_switch_survives_resume(tmp_path):
    def plan():  # min_delta so large that nothing counts as improvement: switch after epoch 1
        return LinearProbeFineTune(epochs=None, patience=1, min_delta=1e9, monitor="val/loss")

    straight = tiny_model(plan())
    tiny_trainer(tmp_path / "a", 3).fit(straight, datamodule=TensorDataModule())
    first = tiny_model(plan())
    tiny_trainer(tmp_path / "b", 2, _last_checkpoint(tmp_path / "b"),
                 enable_checkpointing=True).fit(first, datamodule=TensorDataModule())
    resumed, recorder = tiny_model(plan()), Recorder()
    tiny_trainer(tmp_path / "c", 3, recorder).fit(
        resumed, datamodule=TensorDataModule(), ckpt_path=tmp_path / "b" / "last.ckpt")
    assert resumed.freeze_plan.switch_epoch == 2
    assert len(recorder.trainable[2]) == len(list(resumed.backbone.body.parameters()))
    assert recorder.lrs[2]["head"] == pytest.approx(1e-3)
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


@pytest.mark.parametrize("loading", [
    pytest.param([], id="in_process"),
    pytest.param(["data.num_workers=1", "augment=flip_crop", "mixup=mixup_cutmix"],
                 id="worker_augmenting_and_mixing", marks=pytest.mark.slow)])  # a DataLoader worker process
def test_resume_mid_staged_schedule_equals_the_uninterrupted_run(make_cfg, tmp_path, loading):
    common = [*loading, "backbone.pretrained=false", "backbone.input_size=32", "freeze=staged",
              "freeze.milestones={0:head,1:2,3:all}", "freeze.lr_factors={3:0.1}", "scheduler=cosine",
              "scheduler.scheduler.T_max=4", "trainer.deterministic=true", "test_after_fit=false",
              "optimized_metric=null", "callbacks.early_stopping=null", "callbacks.augmented_batch=null"]
    straight = make_cfg(*common, "trainer.max_epochs=4")
    run(straight)
    interrupted = make_cfg(*common, "trainer.max_epochs=2")
    interrupted.paths.output_dir = str(tmp_path / "interrupted")
    run(interrupted)
    resumed = make_cfg(*common, "trainer.max_epochs=4",
                       f"ckpt_path={tmp_path / 'interrupted' / 'checkpoints' / 'last.ckpt'}")
    resumed.paths.output_dir = str(tmp_path / "resumed")
    run(resumed)

    def load(cfg):
        return torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)

    a, b, mid = load(straight), load(resumed), load(interrupted)
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["state_dict"].items():
        assert torch.equal(b["state_dict"][key], value), key
    # block1 trains only from epoch 3 on, i.e. after the resume: it was not re-frozen
    key = "backbone.body.block1.conv1.conv.weight"
    assert not torch.equal(a["state_dict"][key], mid["state_dict"][key])
    groups_a, groups_b = (c["optimizer_states"][0]["param_groups"] for c in (a, b))
    assert [(g["name"], g["lr"], g["phase_factor"]) for g in groups_a] == \
        [(g["name"], g["lr"], g["phase_factor"]) for g in groups_b]
    assert all(g["phase_factor"] == 0.1 for g in groups_a)


@pytest.mark.parametrize(
    "plan, trained",
    [
        (LastN(n=1, from_layer="block2"), {"block2", "block3", "block4"}),  # from_layer overrides n
        (AutoPlan(similar=True, train_size=32), set()),  # small + similar: feature extraction
    ],
    ids=["last_n_from_layer", "auto"],
)
def test_callback_applies_the_plan_the_module_prepared(tmp_path, plan, trained):
    model = tiny_model(plan)
    before = {k: v.clone() for k, v in model.backbone.body.state_dict().items()}
    tiny_trainer(tmp_path, 1).fit(model, datamodule=TensorDataModule())
    changed = {key.split(".")[0] for key, value in model.backbone.body.state_dict().items()
               if not torch.equal(value, before[key])}
    assert changed == trained


def test_trainable_stage_names_are_tensorboard_text_under_their_own_tag(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="", version="")
    tiny_trainer(tmp_path, 2, logger=logger).fit(tiny_model(Gradual(every=1)), datamodule=TensorDataModule())
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert "freeze/trainable_stage_names" in events.Tags()["tensors"]
    texts = [e.tensor_proto.string_val[0].decode() for e in events.Tensors("freeze/trainable_stage_names")]
    assert texts == ["(none: backbone frozen)", "block4"]
