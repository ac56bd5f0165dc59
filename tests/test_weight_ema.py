"""The classifier's weight EMA (``model.ema_decay``): the hand-computed average after k steps, a
frozen stage's average equal to its weights, validation on the average without disturbing
training, exact resume, and deployment with or without it."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from tiny import CLASSES, SIZE, TensorDataModule, tiny_trainer

from visionlab.errors import UserError
from visionlab.finetune.plans import FeatureExtraction, Staged
from visionlab.modules.classifier import ClassifierModule
from visionlab.nets.custom import shapes_net


def model(plan, ema_decay: float = 0.9) -> ClassifierModule:
    torch.manual_seed(0)
    return ClassifierModule(backbone=shapes_net(input_size=SIZE), num_classes=CLASSES,
                            optimizer=functools.partial(torch.optim.Adam, lr=1e-2), freeze_plan=plan,
                            ema_decay=ema_decay)


class WeightsAfterEachStep(L.Callback):
    """The head's weight after every optimizer step (callbacks run before the module's own hook,
    so before the EMA moves)."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps.append((trainer.global_step, pl_module.head.mlp[0].weight.detach().clone()))


def test_the_average_is_the_hand_computed_one_and_a_frozen_stage_equals_its_weights(tmp_path):
    trained, recorder = model(FeatureExtraction()), WeightsAfterEachStep()
    average = trained.head.mlp[0].weight.detach().clone()
    tiny_trainer(tmp_path, 2, recorder).fit(trained, datamodule=TensorDataModule())
    for step, weight in recorder.steps:  # 2 batches x 2 epochs
        average = average.lerp(weight, 1 - min(0.9, (1 + step) / (10 + step)))
    torch.testing.assert_close(trained.weight_ema.average["head"].mlp[0].weight, average, rtol=0, atol=0)
    assert not torch.equal(average, trained.head.mlp[0].weight)
    frozen = trained.backbone.state_dict()
    for key, value in trained.weight_ema.average["backbone"].state_dict().items():
        assert torch.equal(value, frozen[key]), key  # bit for bit


def test_validation_sees_the_average_and_training_is_untouched(tmp_path):
    plain, averaged = model(Staged({0: "head", 1: "all"}), 0.0), model(Staged({0: "head", 1: "all"}))
    tiny_trainer(tmp_path / "plain", 2).fit(plain, datamodule=TensorDataModule())
    tiny_trainer(tmp_path / "ema", 2).fit(averaged, datamodule=TensorDataModule())
    for key, value in plain.state_dict().items():  # swapped in and out around every validation
        assert torch.equal(averaged.state_dict()[key], value), key
    logged = tiny_trainer(tmp_path / "check", 0).validate(averaged, datamodule=TensorDataModule())[0]
    averaged.adopt_weights(averaged=True)
    swapped = tiny_trainer(tmp_path / "check2", 0).validate(averaged, datamodule=TensorDataModule())[0]
    assert logged["val/loss"] == pytest.approx(swapped["val/loss"], rel=1e-6)


def test_resume_continues_the_average_exactly(tmp_path):
    def last(dirpath):
        return ModelCheckpoint(dirpath=dirpath, filename="last", monitor=None, save_top_k=1,
                               enable_version_counter=False)

    straight = model(Staged({0: "head", 1: "all"}))
    tiny_trainer(tmp_path / "a", 3).fit(straight, datamodule=TensorDataModule())
    first = model(Staged({0: "head", 1: "all"}))
    tiny_trainer(tmp_path / "b", 2, last(tmp_path / "b"), enable_checkpointing=True).fit(
        first, datamodule=TensorDataModule())
    resumed = model(Staged({0: "head", 1: "all"}))
    tiny_trainer(tmp_path / "c", 3).fit(resumed, datamodule=TensorDataModule(),
                                        ckpt_path=tmp_path / "b" / "last.ckpt")
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert any(key.startswith("weight_ema.") for key in straight.state_dict())


def test_deployment_takes_the_average_unless_asked_not_to_and_bad_decays_are_refused():
    for averaged in (True, False):
        deployed = model(FeatureExtraction())
        with torch.no_grad():
            deployed.weight_ema.average["head"].mlp[0].weight.add_(1.0)
        expected = (deployed.weight_ema.average["head"] if averaged else deployed.head).mlp[0].weight.clone()
        deployed.adopt_weights(averaged)
        assert deployed.weight_ema is None and torch.equal(deployed.head.mlp[0].weight, expected)
    with pytest.raises(UserError, match=r"model.ema_decay=1.0 must be in \[0, 1\)"):
        model(FeatureExtraction(), 1.0)
