"""Backbones from every source and every preset in conf/backbone: shapes, stages, errors.

Everything is built with random weights at small input sizes; published weights are
never downloaded (the offline tests stub the download functions and the resolver).
"""

from __future__ import annotations

import copy
import functools
import socket
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone
from visionlab.nets.factory import create_backbone
from visionlab.nets.vgg import vgg_stages

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "backbone"
PRESETS = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
# the smallest sizes these models take; everything else runs at 32 px
SMALL_SIZES = {"inception_v3": 75, "alexnet": 64}
# the generic timm preset needs a name; the cheapest modern CNN timm has
GENERIC_NAMES = {"timm": "convnext_atto"}


@functools.cache
def _built_preset(preset: str) -> Backbone:
    """The preset's backbone as Hydra would build it, without published weights (built once)."""
    cfg = OmegaConf.load(CONF_DIR / f"{preset}.yaml")
    cfg.pretrained = False
    cfg.input_size = SMALL_SIZES.get(preset, 32)
    if preset in GENERIC_NAMES:
        cfg.name = GENERIC_NAMES[preset]
    return instantiate(cfg)


def build_preset(preset: str) -> Backbone:
    """A private copy of the preset's backbone: tests mutate it (gradients, modes, truncation)."""
    return copy.deepcopy(_built_preset(preset))


def check_backbone(backbone: Backbone) -> None:
    """Features have the promised shapes, every parameter is used and staged exactly once."""
    size = backbone.data_config.input_size
    x = torch.randn(2, backbone.data_config.in_chans, size, size)
    backbone.eval()
    features = backbone.forward_features(x)
    assert features.ndim in (2, 3, 4)
    pooled = backbone(x)
    assert pooled.shape == (2, backbone.num_features)
    pooled.sum().backward()
    unused = [n for n, p in backbone.body.named_parameters() if p.grad is None]
    assert not unused, f"parameters the features never use: {unused[:5]}"
    all_ids = {id(p) for p in backbone.body.parameters()}
    for granularity in ("coarse", "fine"):
        stages = backbone.stages(granularity)
        names = [s.name for s in stages]
        assert stages and all(s.modules for s in stages)
        assert len(set(names)) == len(names), f"duplicate {granularity} stage names: {names}"
        staged = [id(p) for s in stages for p in backbone.stage_parameters(s)]
        assert len(staged) == len(set(staged)) and set(staged) == all_ids


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_and_has_stages(preset):
    backbone = build_preset(preset)
    assert backbone.data_config.input_size == SMALL_SIZES.get(preset, 32)
    check_backbone(backbone)


def test_hub_presets_default_to_pretrained():
    for preset in PRESETS:
        cfg = OmegaConf.load(CONF_DIR / f"{preset}.yaml")
        assert cfg.pretrained == (cfg.source != "custom" or preset == "shapes_net"), preset


def test_generic_timm_preset_requires_a_name():
    cfg = OmegaConf.load(CONF_DIR / "timm.yaml")
    assert OmegaConf.is_missing(cfg, "name")


@pytest.mark.parametrize(
    ("name", "size"),
    [("resnet18", 32), ("inception_v3", 75), ("mobilenet_v3_small", 32), ("efficientnet_b0", 32)],
)
def test_torchvision_families(name, size):
    backbone = create_backbone(name, "torchvision", input_size=size)
    assert backbone.source == "torchvision"
    check_backbone(backbone)


def test_vgg_stages_split_at_pools_and_keep_batchnorm_with_its_conv():
    features = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
        nn.MaxPool2d(2),
    )
    coarse, fine, aliases = vgg_stages(features, "features")
    assert [(s.name, s.modules) for s in coarse] == [
        ("block1", ("features.0", "features.1")),
        ("block2", ("features.4", "features.5", "features.7")),
    ]
    assert [(s.name, s.modules) for s in fine] == [
        ("features.0", ("features.0", "features.1")),
        ("features.4", ("features.4", "features.5")),
        ("features.7", ("features.7",)),
    ]
    assert aliases == {"block1_conv1": "features.0", "block2_conv1": "features.4",
                       "block2_conv2": "features.7"}


@pytest.mark.parametrize(
    ("preset", "coarse", "fine_sample"),
    [
        ("resnet18", ["stem", "layer1", "layer2", "layer3", "layer4"], "layer3.1"),
        ("vgg16", ["block1", "block2", "block3", "block4", "block5"], "features.24"),
        ("vit_tiny", ["stem"] + [f"blocks.{i}" for i in range(12)], "blocks.11"),
        ("googlenet", ["stem", "inception3", "inception4", "inception5"], "inception4b"),
        ("alexnet", ["block1", "block2", "block3"], "features.10"),
    ],
)
def test_stage_names_follow_module_names(preset, coarse, fine_sample):
    backbone = build_preset(preset)
    assert [s.name for s in backbone.stages("coarse")] == coarse
    assert fine_sample in [s.name for s in backbone.stages("fine")]


def test_vgg16_keras_aliases_resolve():
    backbone = build_preset("vgg16")
    assert backbone.layer_aliases["block5_conv1"] == "features.24"
    for conv in (1, 2, 3):
        module = backbone.body.get_submodule(backbone.layer_aliases[f"block5_conv{conv}"])
        assert isinstance(module, nn.Conv2d)
    block5 = backbone.stages("coarse")[-1]
    assert block5.modules == tuple(backbone.layer_aliases[f"block5_conv{c}"] for c in (1, 2, 3))
    assert "pre_logits" in backbone.head_prefixes  # features end at the last conv block


@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_grayscale_input(source):
    backbone = create_backbone("resnet18", source, in_chans=1, input_size=32)
    assert backbone.data_config.in_chans == 1 and len(backbone.data_config.mean) == 1
    assert backbone.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 512)


def test_vit_is_built_for_the_requested_size():
    backbone = build_preset("vit_tiny")
    tokens = backbone.forward_features(torch.randn(1, 3, 32, 32))
    assert tokens.shape == (1, 1 + 4, 192)  # class token + 2x2 patches


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("resnt18", "timm", ["'resnt18'", "resnet18"]),
        ("vgg_16", "torchvision", ["'vgg_16'", "vgg16"]),
        ("alexnet", "timm", ["'alexnet'", "backbone.source=torchvision"]),
        ("squeezenet1_0", "torchvision", ["'squeezenet1_0'", "backbone.source=timm"]),
        ("lenet6", "custom", ["'lenet6'", "lenet5"]),
        ("resnet18", "keras", ["'keras'", "timm, torchvision, custom"]),
    ],
)
def test_unknown_backbone_is_a_one_line_user_error(name, source, expected):
    with pytest.raises(UserError) as err:
        create_backbone(name, source)
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize(("preset", "size"), [("alexnet", 32), ("inception_v3", 64)])
def test_too_small_input_is_a_user_error(preset, size):
    cfg = OmegaConf.load(CONF_DIR / f"{preset}.yaml")
    with pytest.raises(UserError, match=f"'{cfg.name}' cannot take {size}px"):
        create_backbone(cfg.name, cfg.source, input_size=size)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty caches: any download attempt fails at once, as offline."""
    import huggingface_hub.errors
    import timm.models._hub

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def no_hub(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError(
            "cannot find the requested files in the local cache"
        )

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", no_hub)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.mark.parametrize(("name", "source"), [("resnet18", "timm"), ("alexnet", "torchvision")])
def test_pretrained_offline_names_the_alternatives(offline, name, source):
    with pytest.raises(UserError) as err:
        create_backbone(name, source, pretrained=True, input_size=64)
    message = str(err.value)
    assert f"'{name}' could not be downloaded" in message and "\n" not in message
    assert "backbone.pretrained=false" in message and "backbone.weights=<file>" in message


def test_pretrained_without_published_weights():
    with pytest.raises(UserError, match="no pretrained weights for 'convnext_atto_rms'"):
        create_backbone("convnext_atto_rms", "timm", pretrained=True)


PRESETS_WITHOUT_ATTENTION = [p for p in PRESETS if p != "vit_tiny"]


@pytest.mark.parametrize("preset", PRESETS_WITHOUT_ATTENTION)
def test_every_cnn_preset_ends_at_its_convolutional_base(preset):
    """Dense layers are specific to the classes they were trained on: they belong to the head."""
    backbone = _built_preset(preset)
    dense = [name for name, module in backbone.body.named_modules() if isinstance(module, nn.Linear)]
    assert dense == [], f"{preset}'s backbone ends after class-specific dense layers: {dense}"


def test_chollet_cnn_from_scratch_is_still_the_course_architecture():
    from visionlab.modules.classifier import ClassifierModule

    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    model = ClassifierModule(build_preset("chollet_cnn"), 2, optimizer=adam,
                             head={"pool": None, "hidden": None, "dropout": 0.5})
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert model.head.pool == "flatten" and [m.out_features for m in linears] == [512, 2]
    assert model.backbone.num_features == 128


# timm families none of the presets use, in small configurations (architectures only, no weights):
# CNNs, NHWC-output transformers (swin), a MetaFormer without group_matcher (poolformer), ViTs, MLPs.
TIMM_FAMILIES = [
    "resnet10t", "efficientnet_b0", "mobilenetv3_small_050", "convnext_atto", "regnetx_002", "densenet121",
    "mobilevit_xxs", "swin_tiny_patch4_window7_224", "poolformer_s12", "vit_tiny_patch16_224", "ghostnet_050",
    "rexnet_100", "tf_efficientnetv2_b0", "levit_128s", "edgenext_xx_small", "mixer_s32_224",
    "xcit_nano_12_p16_224", "dla34", "mnasnet_small", "lcnet_050", "repvgg_a0", "fastvit_t8",
    "efficientvit_b0", "hgnetv2_b0", "coat_lite_tiny",
]


@pytest.mark.parametrize("name", TIMM_FAMILIES)
def test_timm_families_outside_the_presets_build_stage_and_train_their_last_stage(name):
    from visionlab.finetune.callback import apply_plan
    from visionlab.finetune.plans import LastN
    from visionlab.modules.classifier import ClassifierModule

    torch.manual_seed(0)
    backbone = create_backbone(name, source="timm", pretrained=False, input_size=64)
    stages = backbone.stages("coarse")
    assert len(stages) >= 2
    model = ClassifierModule(backbone, 3, optimizer=functools.partial(torch.optim.SGD, lr=0.1),
                             freeze_plan=LastN(n=1))
    model.train()
    apply_plan(model.backbone, model.freeze_plan, 0)
    trainable = {id(p) for p in model.backbone.parameters() if p.requires_grad}
    assert trainable and trainable == {id(p) for p in backbone.stage_parameters(stages[-1])}
    named = dict(model.backbone.named_parameters())
    frozen_before = {n: p.detach().clone() for n, p in named.items() if not p.requires_grad}
    optimizer = model.configure_optimizers()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(torch.equal(named[n], before) for n, before in frozen_before.items())


def test_a_timm_vit_pools_by_its_class_token_not_the_mean_of_all_tokens():
    backbone = create_backbone("vit_tiny_patch16_224", source="timm", pretrained=False, input_size=64)
    backbone.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = backbone.forward_features(x)
        pooled = backbone(x)
    torch.testing.assert_close(pooled, tokens[:, 0])
    assert not torch.allclose(pooled, tokens.mean(dim=1))


def test_a_channels_last_timm_model_pools_over_space():
    backbone = create_backbone("swin_tiny_patch4_window7_224", source="timm", pretrained=False, input_size=64)
    backbone.eval()
    with torch.no_grad():
        features = backbone.forward_features(torch.randn(2, 3, 64, 64))
    assert features.shape[1] == backbone.num_features  # channels first, as pooling expects
    pooled = backbone.pool(features, "avg")
    torch.testing.assert_close(pooled, features.mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)


# Where each preset's backbone ends: its last coarse stage, just before the class-specific layers
# (fully connected layers, VGG's pre-logits, MobileNetV3's conv head) that the new head replaces.
LAST_STAGES = {
    "alexnet": "block3", "chollet_cnn": "block4", "efficientnet_b0": "blocks.6", "googlenet": "inception5",
    "inception_v3": "Mixed_7c", "lenet5": "c5", "mobilenetv3": "blocks.6", "resnet18": "layer4",
    "resnet50": "layer4", "shapes_net": "block4", "timm": "stages.3", "vgg16": "block5", "vgg19": "block5",
    "vit_tiny": "blocks.11", "xception": "conv3",
}


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_names_the_stage_its_backbone_ends_with(preset):
    assert _built_preset(preset).stages("coarse")[-1].name == LAST_STAGES[preset]


@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
def test_a_random_timm_vgg_is_initialised_as_timm_does_without_its_pre_logits(name):
    torch.manual_seed(0)
    backbone = create_backbone(name, source="timm", pretrained=False, input_size=32)
    features = backbone.body.features
    assert "pre_logits" in backbone.head_prefixes
    assert sum(p.numel() for p in backbone.parameters()) == sum(p.numel() for p in features.parameters())
    for module in features:
        if isinstance(module, nn.Conv2d):  # timm's VGG init: Kaiming normal, fan-out, zero bias
            fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
            assert module.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
        elif isinstance(module, nn.BatchNorm2d):  # unit scale, fresh statistics
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.running_var, torch.ones_like(module.running_var))
            assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean))
            assert module.num_batches_tracked.item() == 0


def test_stochastic_depth_drops_residual_branches_in_training_only_and_is_refused_where_absent():
    from visionlab.nets.factory import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("resnet18", source="timm", pretrained=False, input_size=32, drop_path_rate=0.5)
    for module in backbone.modules():  # timm zero-initialises each block's last BatchNorm: nothing to drop
        if isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
    x = torch.randn(8, 3, 32, 32)
    backbone.train()
    assert not torch.equal(backbone(x), backbone(x))  # a different set of branches dropped each pass
    backbone.eval()
    assert torch.equal(backbone(x), backbone(x))
    for name, source, message in [("vgg11", "timm", "timm's vgg11 has no stochastic depth"),
                                  ("shapes_net", "custom", "custom backbone 'shapes_net' has no stochastic")]:
        with pytest.raises(UserError, match=message):
            create_backbone(name, source=source, pretrained=False, drop_path_rate=0.1)
    with pytest.raises(UserError, match=r"backbone.drop_path_rate=1.5 must be in \[0, 1\)"):
        create_backbone("resnet18", source="timm", drop_path_rate=1.5)
