"""The GAN's training step: the restructured step (``model.reuse_fakes``) against a textbook
reference, and the GPU speed options (channels_last, compile, bf16-mixed) against the default."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_gan import first_losses, fit, projected_gan, tiny_gan
from tiny import assert_trained_alike

from visionlab.errors import UserError
from visionlab.finetune.callback import FreezeScheduleCallback, apply_plan
from visionlab.finetune.plans import FeatureExtraction
from visionlab.modules.gan import GANModule

LR = 0.05
# Plain SGD: a step is -LR x the gradient, so equal steps mean equal gradients
SGD = {"optimizer": torch.optim.SGD, "g_lr": LR, "d_lr": LR}


def textbook_step(generator, discriminator, real, z, labels):
    """One step as PyTorch's DCGAN example takes it, with plain SGD: D on the real batch and on the
    detached fakes, D's step, then G's loss on the same fakes through the updated D. The D
    gradients and the losses."""
    fake = generator(z, labels)
    d_real, d_fake = discriminator(real, labels), discriminator(fake.detach(), labels)
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    trained = [p for p in discriminator.parameters() if p.requires_grad]
    d_grads = torch.autograd.grad(d_loss, trained)
    with torch.no_grad():
        for p, grad in zip(trained, d_grads, strict=True):
            p -= LR * grad
    d_judged = discriminator(fake, labels)
    g_loss = F.binary_cross_entropy_with_logits(d_judged, torch.ones_like(d_judged))
    g_grads = torch.autograd.grad(g_loss, list(generator.parameters()))
    with torch.no_grad():
        for p, grad in zip(generator.parameters(), g_grads, strict=True):
            p -= LR * grad
    return d_loss.item(), g_loss.item(), d_grads


def counted_calls(module: torch.nn.Module) -> list[int]:
    """A one-element list counting ``module``'s forward calls from now on."""
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("reuse_fakes", [True, False])
@pytest.mark.parametrize("discriminator", ["dcgan", "projected"])
def test_one_step_equals_the_textbook_step_and_runs_each_network_only_as_often_as_needed(
        tmp_path: Path, discriminator: str, reuse_fakes: bool):
    if discriminator == "projected":
        model = projected_gan(FeatureExtraction(), conditional=True, reuse_fakes=reuse_fakes, **SGD)
        callbacks = [FreezeScheduleCallback()]
    else:
        model = tiny_gan(conditional=True, reuse_fakes=reuse_fakes, **SGD)
        callbacks = []
    generator, judge = copy.deepcopy(model.generator), copy.deepcopy(model.discriminator)
    if discriminator == "projected":
        apply_plan(judge.backbone, model.freeze_plan, epoch=0)
    z = torch.randn(8, model.hparams.latent_dim)
    model.sample_latent = lambda n: z  # the same noise for every draw: the fresh batch equals the reused one
    g_calls = counted_calls(model.generator)
    front_calls = counted_calls(model.backbone.body.block1) if discriminator == "projected" else [0]
    batches, in_step, step = [], [], model.training_step

    def training_step(batch, *rest):
        before = g_calls[0], front_calls[0]
        step(batch, *rest)
        batches.append(batch)
        in_step.append((g_calls[0] - before[0], front_calls[0] - before[1]))  # not the epoch's sample grid

    model.training_step = training_step
    losses = first_losses(model)
    fit(model, tmp_path, max_steps=2, callbacks=callbacks)  # one batch: one D and one G update

    real, labels = batches[0]
    d_loss, g_loss, d_grads = textbook_step(generator, judge, real, z, labels)
    assert losses == pytest.approx({"discriminator": d_loss, "generator": g_loss}, rel=1e-5)
    for name, ours, reference in (("G", model.generator, generator), ("D", model.discriminator, judge)):
        for (key, p), q in zip(ours.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{name} {key}")
    # D's gradients are its update's alone: G's update built no graph through D's parameters
    trained = [p for p in model.discriminator.parameters() if p.requires_grad]
    for p, grad in zip(trained, d_grads, strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.backbone.parameters()) if discriminator == "projected" else True
    # reused: G forward once; the frozen features of the real and the generated batch, once each
    passes = (1, 2) if reuse_fakes else (2, 3)
    assert in_step == [passes if discriminator == "projected" else (passes[0], 0)]


def trained_gan(root: Path, precision: str = "32-true", **options) -> dict[str, torch.Tensor]:
    """tiny_gan's weights (the same seeded start) after two batches of plain SGD at 0.01."""
    model = tiny_gan(optimizer=torch.optim.SGD, g_lr=0.01, d_lr=0.01, **options)
    fit(model, root, max_steps=4, precision=precision)
    return model.state_dict()


@pytest.fixture(scope="module")
def eager_gan(tmp_path_factory) -> tuple[dict, dict]:
    """The reference: tiny_gan trained in float32, eagerly, NCHW; and its initial weights."""
    initial = {key: value.clone() for key, value in tiny_gan().state_dict().items()}
    return trained_gan(tmp_path_factory.mktemp("eager")), initial


@pytest.mark.numerics
@pytest.mark.parametrize("options", [{"channels_last": True}, {"compile": "aot_eager"}],
                         ids=["channels_last", "compile"])
def test_gan_speed_options_train_to_the_same_weights(tmp_path, eager_gan, options):
    trained = trained_gan(tmp_path, **options)
    reference, initial = eager_gan
    assert_trained_alike(trained, reference, initial)  # NHWC kernels and traced graphs sum in other orders


@pytest.mark.numerics
def test_a_gan_trains_under_bf16_mixed_with_manual_optimization(tmp_path, eager_gan):
    """Lightning's precision plugin wraps the step in autocast and manual_backward: the same steps
    as float32, within what bfloat16's 8-bit mantissa allows."""
    trained = trained_gan(tmp_path, precision="bf16-mixed")
    reference, initial = eager_gan
    assert all(value.dtype == torch.float32 for value in trained.values() if value.is_floating_point())
    assert_trained_alike(trained, reference, initial, rel=0.1)


def test_a_compiled_runs_checkpoint_is_rebuilt_for_sampling_without_compiling():
    model = tiny_gan(compile="aot_eager")
    assert model.generator._compiled_call_impl is not None
    rebuilt = GANModule.for_sampling(dict(model.hparams))
    assert rebuilt.hparams.compile is False and rebuilt.generator._compiled_call_impl is None


def test_gan_speed_options_are_checked():
    with pytest.raises(UserError, match="model.compile='turbo' is not a torch.compile backend"):
        tiny_gan(compile="turbo")
    with pytest.raises(UserError, match=r"channels_last=true lays out images, not samples of shape \(2,\)"):
        tiny_gan(generator="mlp", discriminator="mlp", sample_shape=[2], channels_last=True)
