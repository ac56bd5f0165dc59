"""Freeze plans as functions of the epoch, their checks, auto's four cases, truncation, LR phases."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra.utils import instantiate
from tiny import SIZE, STAGES
from torch import nn

from visionlab.errors import UserError
from visionlab.finetune.auto import AutoPlan
from visionlab.finetune.callback import apply_plan, warn_about_unreached_milestones
from visionlab.finetune.lp_ft import LinearProbeFineTune
from visionlab.finetune.lr_phase import init_phase, scheduler_view, set_phase_factor
from visionlab.finetune.plans import FeatureExtraction, FreezePlan, Gradual, LastN, Staged, TwoPhase
from visionlab.nets.custom import shapes_net


def prepared(plan):
    backbone = shapes_net(input_size=SIZE)
    plan.prepare(backbone)
    return plan, backbone


@pytest.mark.parametrize("plan, expected", [
    (FreezePlan(), {0: 4, 9: 4}),
    (FeatureExtraction(), {0: 0, 9: 0}),
    (LastN(n=2), {0: 2, 9: 2}),
    (LastN(from_layer="block3"), {0: 2, 9: 2}),
    (Staged({0: "head", 2: 1, 4: "all"}), {0: 0, 1: 0, 2: 1, 3: 1, 4: 4, 9: 4}),
    (Staged({3: 2}), {0: 0, 2: 0, 3: 2}),
    (TwoPhase(epochs=2), {0: 0, 1: 0, 2: 4, 5: 4}),
    (Gradual(every=2), {0: 0, 1: 0, 2: 1, 4: 2, 7: 3, 8: 4, 20: 4}),
    (LinearProbeFineTune(epochs=3), {0: 0, 2: 0, 3: 4}),
])
def test_trainable_stages_are_the_top_ones_at_each_epoch(plan, expected):
    plan, _ = prepared(plan)
    for epoch, count in expected.items():
        assert plan.trainable_stages(epoch, STAGES) == set(STAGES[len(STAGES) - count:]), epoch


def test_fine_granularity_counts_layers_not_blocks():
    plan, backbone = prepared(LastN(n=4, granularity="fine"))
    assert apply_plan(backbone, plan, 0) == ["block2.conv2", "block3.conv1", "block3.conv2", "block4.conv1"]
    plan, backbone = prepared(LastN(from_layer="block3.conv2", granularity="fine"))
    assert apply_plan(backbone, plan, 0) == ["block3.conv2", "block4.conv1"]


@pytest.mark.parametrize("plan, factors", [
    (TwoPhase(epochs=2, ft_lr_mult=0.1), {0: 1.0, 1: 1.0, 2: 0.1, 7: 0.1}),
    (Staged({0: "head", 1: "all"}, lr_factors={1: 0.5, 3: 0.25}), {0: 1.0, 1: 0.5, 2: 0.5, 3: 0.25}),
    (LinearProbeFineTune(epochs=2, ft_lr_mult=0.2), {0: 1.0, 1: 1.0, 2: 0.2}),
    (Gradual(), {0: 1.0, 5: 1.0}),
])
def test_phase_factors_by_epoch(plan, factors):
    assert {e: plan.lr_factor(e) for e in factors} == factors


def test_layer_decay_and_lr_mult_give_discriminative_rates():
    mults = FreezePlan(lr_mult=0.5, layer_decay=0.5).lr_multipliers(STAGES)
    assert mults == {"block1": 0.5 / 16, "block2": 0.5 / 8, "block3": 0.5 / 4, "block4": 0.5 / 2}


def test_apply_plan_freezes_parameters_and_keeps_frozen_batchnorm_in_eval():
    plan, backbone = prepared(LastN(n=1))
    apply_plan(backbone, plan, 0)
    backbone.train()  # what Lightning does after each validation loop
    for name, module in backbone.body.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.training == name.startswith("block4"), name
    for name, p in backbone.body.named_parameters():
        assert p.requires_grad == name.startswith("block4"), name
    plan_bn, backbone_bn = prepared(LastN(n=1, train_bn=True))
    apply_plan(backbone_bn, plan_bn, 0)
    backbone_bn.train()
    assert all(m.training for m in backbone_bn.modules())


@pytest.mark.parametrize("make, message", [
    (lambda: prepared(LastN(from_layer="blok3")),
     r"freeze.from_layer='blok3' names no layer.*nearest: block3"),
    (lambda: prepared(LastN(from_layer="block3.conv2")),
     r"starts inside stage 'block3'.*freeze.granularity=fine"),
    (lambda: prepared(LastN(n=5)), r"freeze.n=5 but shapes_net has only 4 coarse stages.*n <= 4"),
    (lambda: Staged({0: "head", 4: "all", 6: 2}), r"milestones=.*must be increasing"),
    (lambda: Staged({3: 1, 0: "head"}), r"milestones=.*must be increasing"),
    (lambda: Staged({0: "some"}), r"'some' is not 'head', 'all' or a number"),
    (lambda: prepared(Staged({0: "head", 2: 7})), r"milestones\[2\]=7 but shapes_net has only 4"),
    (lambda: prepared(FreezePlan(truncate_after="block9")),
     r"truncate_after='block9' is not a stage.*block4"),
    (lambda: FreezePlan(granularity="medium"), r"freeze.granularity='medium' is not one of: coarse, fine"),
    (lambda: LinearProbeFineTune(epochs=None), r"freeze=lp_ft needs freeze.epochs"),
    (lambda: prepared(AutoPlan(train_size=10)), r"freeze=auto needs freeze.similar=true\|false"),
    (lambda: auto_with_data(AutoPlan(similar=True), iter(range(3))),
     r"cannot tell the train-set size.*freeze.train_size="),
])
def test_bad_settings_are_one_line_user_errors(make, message):
    with pytest.raises(UserError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def auto_with_data(plan: AutoPlan, train_set):
    plan.count_train_set(train_set)
    return prepared(plan)


@pytest.mark.parametrize("similar, size, case, trains, kept_stages", [
    (True, 100, "small+similar", False, STAGES),
    (True, 10_000, "large+similar", True, STAGES),
    (False, 100, "small+different", False, STAGES[:2]),
    (False, 10_000, "large+different", True, STAGES),
])
def test_auto_picks_each_of_the_four_cases(caplog, similar, size, case, trains, kept_stages):
    with caplog.at_level(logging.INFO, logger="visionlab.finetune.auto"):
        plan, backbone = auto_with_data(AutoPlan(similar=similar, size_threshold=5000), range(size))
    assert [s.name for s in backbone.stages()] == kept_stages
    assert plan.trainable_stages(0, kept_stages) == (set(kept_stages) if trains else set())
    assert plan.describe().startswith(f"auto: {case}")
    assert f"freeze=auto chose {case}" in caplog.text and f"{size} train images" in caplog.text


def test_auto_uses_train_size_override_for_datasets_without_length():
    plan, _ = auto_with_data(AutoPlan(similar=True, train_size=20_000), iter(range(3)))
    assert plan.trainable_count(0, 4) == 4


@pytest.mark.parametrize("name", ["none", "feature_extraction", "last_n", "staged", "two_phase",
                                  "gradual", "lp_ft", "auto"])
def test_every_freeze_config_builds_a_plan(make_cfg, name):
    cfg = make_cfg(f"freeze={name}", *(["freeze.similar=true"] if name == "auto" else []))
    plan = instantiate(cfg.freeze)
    if isinstance(plan, AutoPlan):
        plan.count_train_set(range(100))
    plan, _ = prepared(plan)
    assert isinstance(plan, FreezePlan) and plan.describe()


def test_lp_ft_switches_on_plateau_and_its_state_round_trips():
    plan = LinearProbeFineTune(epochs=None, patience=2, monitor="val/loss", mode="min")
    for epoch, loss in enumerate([1.0, 0.8, 0.85, 0.9]):
        plan.observe(epoch, {"val/loss": loss})
    assert plan.switch_epoch == 4  # no improvement after epoch 1 for 2 validations (epochs 2, 3)
    restored = LinearProbeFineTune(epochs=None, patience=2, monitor="val/loss", mode="min")
    restored.load_state_dict(plan.state_dict())
    assert [restored.trainable_count(e, 4) for e in (3, 4)] == [0, 4]
    with pytest.raises(UserError, match="freeze.monitor='val/acc' was not logged; available: val/loss"):
        LinearProbeFineTune(patience=1, monitor="val/acc").observe(0, {"val/loss": 1.0})


def test_truncate_drops_later_stages_and_measures_the_width():
    backbone = shapes_net(input_size=SIZE).truncate("block2")
    assert [s.name for s in backbone.stages("coarse")] == ["block1", "block2"]
    assert [s.name for s in backbone.stages("fine")] == [
        "block1.conv1", "block1.conv2", "block2.conv1", "block2.conv2"]
    assert backbone.num_features == 64
    assert not any(n.startswith(("block3", "block4")) for n, _ in backbone.named_parameters())
    assert backbone(torch.zeros(2, 3, SIZE, SIZE)).shape == (2, 64)
    fine_cut = shapes_net(input_size=SIZE).truncate("block3.conv1")
    assert fine_cut.num_features == 128 and [s.name for s in fine_cut.stages()][-1] == "block3"


def test_phase_factor_composes_with_plateau_and_one_cycle():
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w], "lr": 1.0}])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    init_phase(opt)
    set_phase_factor(opt, 0.1)
    for _ in range(3):
        with scheduler_view(opt):
            plateau.step(1.0)  # never improves: halves after the first step
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25 * 0.1)
    assert opt.param_groups[0]["unscaled_lr"] == pytest.approx(0.25)

    opt2 = torch.optim.SGD([{"params": [w], "lr": 1.0}])
    reference = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": 1.0}])
    cycles = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10) for o in (opt2, reference)]
    init_phase(opt2)
    set_phase_factor(opt2, 0.1)
    for _ in range(5):
        opt2.step(), reference.step()
        with scheduler_view(opt2):
            cycles[0].step()
        cycles[1].step()
        assert opt2.param_groups[0]["lr"] == pytest.approx(0.1 * reference.param_groups[0]["lr"])


@pytest.mark.parametrize("plan, max_epochs, warned_epoch", [
    (TwoPhase(epochs=5), 4, 5),
    (TwoPhase(epochs=2), 4, None),
    (Staged({0: "head", 3: 2, 6: "all"}), 5, 6),
    (Gradual(every=1), 2, 2),
    (FreezePlan(), 1, None),
])
def test_a_milestone_beyond_max_epochs_is_named_and_warned(caplog, plan, max_epochs, warned_epoch):
    backbone = shapes_net(input_size=32)
    plan.prepare(backbone)
    assert plan.first_change_after(len(backbone.stages(plan.granularity)), max_epochs) == warned_epoch
    with caplog.at_level(logging.WARNING, logger="visionlab.finetune.callback"):
        warn_about_unreached_milestones(plan, backbone, max_epochs)
    expected = (f"the freeze plan changes at epoch {warned_epoch} (counting from 0), but trainer.max_epochs="
                f"{max_epochs} stops after epoch {max_epochs - 1}: raise trainer.max_epochs to at least "
                f"{(warned_epoch or 0) + 1} or move the milestone (the plan: {plan.describe()})")
    assert (expected in caplog.text) is (warned_epoch is not None)
