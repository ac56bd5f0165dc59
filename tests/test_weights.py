"""Loading backbone weights from local files: the three formats, the dropped old head, the errors.

Every weights file is written by the test itself from a randomly initialised model.
"""

from __future__ import annotations

import logging

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.factory import create_backbone
from visionlab.nets.sources import BACKBONE_SOURCES
from visionlab.nets.weights import load_backbone_weights, save_backbone_weights


def fresh(name: str = "test_resnet", source: str = "timm"):
    """A small randomly initialised backbone (timm's 0.5 M-parameter test ResNet by default)."""
    return create_backbone(name, source, input_size=32)


def timm_state(num_classes: int = 10) -> dict[str, torch.Tensor]:
    """A raw timm model state dict, classifier included, as timm's hub files are."""
    return timm.create_model("test_resnet", num_classes=num_classes).state_dict()


def assert_body_equals(backbone, state: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Every body tensor equals the file's tensor for its key."""
    for key, value in backbone.body.state_dict().items():
        assert torch.equal(value, state[prefix + key]), key


def prefixed(backbone) -> dict[str, torch.Tensor]:
    """``backbone``'s state dict with the ``body.`` keys a saved Backbone has."""
    return {f"body.{k}": v for k, v in backbone.body.state_dict().items()}


def test_raw_timm_state_dict_loads_and_drops_the_old_head(tmp_path, caplog):
    state = timm_state()
    path = tmp_path / "test_resnet.pth"
    torch.save(state, path)
    backbone = fresh()
    before = backbone.body.layer1[0].conv1.weight.clone()
    with caplog.at_level(logging.INFO, logger="visionlab.nets.weights"):
        load_backbone_weights(backbone, path)
    assert not torch.equal(before, backbone.body.layer1[0].conv1.weight)
    assert_body_equals(backbone, state)
    assert not any(k.startswith("fc.") for k in backbone.body.state_dict())
    assert "dropping the old head: fc.weight, fc.bias" in caplog.text


def test_raw_torchvision_state_dict_loads_into_torchvision_backbone(tmp_path, caplog):
    state = torchvision.models.resnet18(num_classes=3).state_dict()
    path = tmp_path / "tv_resnet18.pt"
    torch.save(state, path)
    backbone = fresh("resnet18", "torchvision")
    with caplog.at_level(logging.INFO, logger="visionlab.nets.weights"):
        load_backbone_weights(backbone, path)
    assert_body_equals(backbone, state)
    assert "dropping the old head: fc.weight, fc.bias" in caplog.text


def test_raw_safetensors_loads(tmp_path):
    state = timm_state()
    path = tmp_path / "test_resnet.safetensors"
    save_file(state, str(path))
    backbone = fresh()
    load_backbone_weights(backbone, path)
    assert_body_equals(backbone, state)


def test_saved_backbone_round_trips_through_safetensors(tmp_path, caplog):
    source = fresh("shapes_net", "custom")
    path = save_backbone_weights(source, tmp_path / "sub" / "shapes_net.safetensors")
    target = fresh("shapes_net", "custom")
    weight = "block1.conv1.conv.weight"
    assert not torch.equal(source.body.get_parameter(weight), target.body.get_parameter(weight))
    with caplog.at_level(logging.INFO, logger="visionlab.nets.weights"):
        load_backbone_weights(target, path)
    assert_body_equals(target, prefixed(source), "body.")
    assert "dropping the old head" not in caplog.text


def test_visionlab_checkpoint_loads_backbone_and_drops_its_head(tmp_path, caplog):
    source = fresh()
    state = {f"backbone.body.{k}": v for k, v in source.body.state_dict().items()}
    state |= {"head.fc.weight": torch.randn(4, 96), "head.fc.bias": torch.zeros(4)}
    path = tmp_path / "epoch=3.ckpt"
    torch.save({"state_dict": state, "epoch": 3, "hyper_parameters": {"lr": 0.01}}, path)
    backbone = fresh()
    with caplog.at_level(logging.INFO, logger="visionlab.nets.weights"):
        load_backbone_weights(backbone, path)
    assert_body_equals(backbone, state, "backbone.body.")
    assert "dropping the old head: head.fc.weight, head.fc.bias" in caplog.text


def test_vgg_pre_logits_belong_to_the_old_head(tmp_path, caplog):
    backbone = fresh("vgg11")
    state = backbone.body.state_dict()
    state |= {"pre_logits.fc1.weight": torch.zeros(1), "head.fc.weight": torch.zeros(1)}
    path = tmp_path / "vgg11.safetensors"
    save_file(state, str(path))
    with caplog.at_level(logging.INFO, logger="visionlab.nets.weights"):
        load_backbone_weights(backbone, path)
    assert "dropping the old head: head.fc.weight, pre_logits.fc1.weight" in caplog.text


def test_weights_replace_pretrained_so_nothing_is_downloaded(tmp_path, monkeypatch):
    state = timm_state()
    path = tmp_path / "test_resnet.pth"
    torch.save(state, path)

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download published weights")

    monkeypatch.setattr(timm.models._builder, "load_pretrained", no_download)
    backbone = create_backbone(
        "test_resnet", "timm", pretrained=True, weights=str(path), input_size=32
    )
    assert_body_equals(backbone, state)


def test_shapes_net_pretrained_loads_the_shipped_file(tmp_path, monkeypatch):
    shipped = tmp_path / "assets" / "shapes_net.safetensors"
    monkeypatch.setitem(BACKBONE_SOURCES["custom"].shipped, "shapes_net", shipped)
    with pytest.raises(UserError, match="shapes_net weights are missing at .*pretrain_shapes"):
        create_backbone("shapes_net", "custom", pretrained=True)
    source = fresh("shapes_net", "custom")
    save_backbone_weights(source, shipped)
    backbone = create_backbone("shapes_net", "custom", pretrained=True)
    assert_body_equals(backbone, prefixed(source), "body.")


def _broken(state: dict[str, torch.Tensor], how: str) -> dict[str, torch.Tensor]:
    """``state`` with one key renamed, removed, or given the wrong shape."""
    state = dict(state)
    if how == "unexpected":
        state["conv1.extra_weight"] = state["conv1.0.weight"]
    elif how == "missing":
        del state["layer4.0.bn2.running_var"]
    else:
        state["layer1.0.conv1.weight"] = torch.zeros(32, 32, 1, 1)
    return state


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("unexpected", "unexpected keys: conv1.extra_weight"),
        ("missing", "missing keys: layer4.0.bn2.running_var"),
        (
            "shape",
            "shape mismatches: layer1.0.conv1.weight (file (32, 32, 1, 1), model (32, 32, 3, 3))",
        ),
    ],
)
def test_keys_that_do_not_fit_are_a_user_error_and_load_nothing(tmp_path, how, expected):
    path = tmp_path / "broken.pth"
    torch.save(_broken(timm_state(), how), path)
    backbone = fresh()
    before = backbone.body.layer1[0].conv1.weight.clone()
    with pytest.raises(UserError) as err:
        load_backbone_weights(backbone, path)
    assert expected in str(err.value) and str(path) in str(err.value)
    assert torch.equal(before, backbone.body.layer1[0].conv1.weight)


def test_many_bad_keys_are_shortened(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({f"encoder.layer{i}.weight": torch.zeros(1) for i in range(8)}, str(path))
    with pytest.raises(UserError, match=r"unexpected keys: encoder\.layer0\.weight, .*\+3 more"):
        load_backbone_weights(fresh("shapes_net", "custom"), path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "weights.pth"
    with pytest.raises(UserError, match=f"no such file: {path}"):
        create_backbone("shapes_net", "custom", weights=str(path))


@pytest.mark.parametrize(
    ("filename", "write"),
    [
        ("notes.pth", lambda p: p.write_text("these are not weights\n")),
        ("module.pth", lambda p: torch.save(nn.Linear(2, 2), p)),
        ("numbers.pt", lambda p: torch.save([1, 2, 3], p)),
        ("broken.safetensors", lambda p: p.write_bytes(b"\x00\x01garbage")),
        ("empty.ckpt", lambda p: torch.save({"state_dict": {}}, p)),
    ],
)
def test_files_that_are_not_state_dicts_name_path_and_formats(tmp_path, filename, write):
    path = tmp_path / filename
    write(path)
    with pytest.raises(UserError) as err:
        load_backbone_weights(fresh("shapes_net", "custom"), path)
    message = str(err.value)
    assert str(path) in message and ".safetensors" in message and "\n" not in message


def test_a_chollet_cnn_checkpoint_transfers_its_conv_base_only(tmp_path, caplog):
    """Issue: the Dense 512 of a chollet_cnn pretrained on other classes is class-specific."""
    from visionlab.modules.classifier import ClassifierModule

    pretrained = ClassifierModule(create_backbone("chollet_cnn", source="custom", input_size=32), 5,
                                  optimizer=torch.optim.Adam)
    assert [m.out_features for m in pretrained.head.modules() if isinstance(m, nn.Linear)] == [512, 5]
    path = tmp_path / "chollet.ckpt"
    torch.save({"state_dict": pretrained.state_dict(), "hyper_parameters": {}}, path)
    with caplog.at_level(logging.INFO, logger="visionlab.nets.weights"):
        target = create_backbone("chollet_cnn", source="custom", input_size=32, weights=str(path))
    assert_body_equals(target, pretrained.state_dict(), "backbone.body.")
    assert "dropping the old head: head.mlp.0.weight" in caplog.text  # the Dense 512 stays behind
    old_layout = {**target.body.state_dict(), "dense.fc.weight": torch.zeros(512, 512),
                  "dense.fc.bias": torch.zeros(512)}  # the earlier layout kept the Dense 512 in the body
    save_file(old_layout, str(tmp_path / "old.safetensors"))
    fresh_chollet = create_backbone("chollet_cnn", source="custom", input_size=32)
    load_backbone_weights(fresh_chollet, tmp_path / "old.safetensors")
    assert_body_equals(fresh_chollet, old_layout, "")
