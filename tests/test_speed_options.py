"""GPU speed options, checked for correctness on CPU: channels_last, torch.compile, fused optimizers."""

from __future__ import annotations

import functools

import pytest
import torch
from tiny import TensorDataModule, assert_trained_alike, tiny_model, tiny_trainer

from visionlab.errors import UserError
from visionlab.finetune.plans import Staged
from visionlab.modules.classifier import ClassifierModule

pytestmark = pytest.mark.numerics


def _train(tmp_path, model: ClassifierModule, epochs: int = 2) -> dict[str, torch.Tensor]:
    tiny_trainer(tmp_path, epochs).fit(model, datamodule=TensorDataModule())
    return model.state_dict()


def _initial() -> dict[str, torch.Tensor]:
    """The weights every variant starts from (a copy: training changes them in place)."""
    return {key: value.clone() for key, value in _variant().state_dict().items()}


def _variant(**options) -> ClassifierModule:
    """tiny_model's network (same seeded weights) rebuilt with the speed ``options``.

    Plain SGD at a small learning rate by default: Adam turns rounding-level differences of
    near-zero gradients into steps of the size of the learning rate, and the gap between two
    trajectories that differ only in rounding grows with the step (NHWC vs NCHW under
    ``ATEN_CPU_CAPABILITY=default``: 7.6e-3 of the update at lr 0.05, 5e-4 at lr 0.01).
    """
    reference = tiny_model(Staged({0: "head", 1: "all"}))
    optimizer = options.pop("optimizer", functools.partial(torch.optim.SGD, lr=0.01))
    torch.manual_seed(0)
    model = ClassifierModule(backbone=reference.backbone, num_classes=reference.hparams.num_classes,
                             optimizer=optimizer, freeze_plan=reference.freeze_plan, **options)
    model.head.load_state_dict(reference.head.state_dict())
    return model


def test_channels_last_converts_the_backbone_and_trains_to_the_same_weights(tmp_path):
    model = _variant(channels_last=True)
    conv = model.backbone.body.block1.conv1.conv.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    trained = _train(tmp_path / "nhwc", model)
    reference = _train(tmp_path / "nchw", _variant())
    assert_trained_alike(trained, reference, _initial())  # NHWC kernels sum in another order


def test_compiled_backbone_follows_the_freeze_plan_and_matches_eager(tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    model = _variant(compile="aot_eager")  # dynamo + autograd tracing, no C++ toolchain needed
    before = model.backbone.body.block1.conv1.conv.weight.clone()
    trained = _train(tmp_path / "compiled", model)
    # one graph per (phase, train/eval): frozen + training, eval, unfrozen + training; never per step
    assert 2 <= counters["stats"]["unique_graphs"] <= 4
    reference = _train(tmp_path / "eager", _variant())
    assert not torch.equal(trained["backbone.body.block1.conv1.conv.weight"], before)  # unfrozen at epoch 1
    assert_trained_alike(trained, reference, _initial())  # traced graphs may fuse and reorder sums


def test_unknown_compile_backend_is_a_user_error():
    with pytest.raises(UserError, match="model.compile='turbo' is not a torch.compile backend"):
        _variant(compile="turbo")


def test_fused_adam_steps_like_the_default_over_the_stage_parameter_groups():
    batch = next(iter(_loader()))
    weights = {"initial": _initial()}
    for fused in (False, True):
        model = _variant(optimizer=functools.partial(torch.optim.Adam, lr=1e-2, fused=fused))
        for parameter in model.backbone.body.block1.parameters():  # a frozen stage: no gradients
            parameter.requires_grad_(False)
        optimizer = model.configure_optimizers()
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
            optimizer.step()
        weights[fused] = model.state_dict()
    # the fused kernel's rounding differs per CPU (up to 1.7e-4 per element on an AVX-512 EPYC)
    assert_trained_alike(weights[True], weights[False], weights["initial"])


def _loader():
    data = TensorDataModule()
    data.setup("fit")
    return data.train_dataloader()
