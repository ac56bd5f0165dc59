"""The build protocol and the registry of model kinds: a kind added in a test file trains,
checkpoints and samples through the unchanged entry points; checkpoints written before kinds were
recorded still load; the front ends never ask which kind they hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from PIL import Image

from visionlab.cli.main import main
from visionlab.errors import UserError
from visionlab.modules.base import MODEL_KINDS, kind_class
from visionlab.train import run


def test_a_kind_defined_in_a_test_file_trains_checkpoints_and_samples(make_cfg, tmp_path, capsys):
    cfg = make_cfg("data=shapes_mono", "trainer.max_epochs=1", "test_after_fit=false",
                   "optimized_metric=null", "monitor=train/g_loss", "mode=min",
                   "callbacks.early_stopping=null", "callbacks.augmented_batch=null")
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "toy_kind.ToyGAN", "image_size": 8, "channels": 1,
                                      "latent_dim": 4})
    run(cfg)  # visionlab.train knows nothing of toy_kind
    checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)
    assert (state["visionlab_module"], state["visionlab_target"]) == ("toy_gan", "toy_kind.ToyGAN")
    MODEL_KINDS.discard("toy_gan")  # as in a fresh process: `visionlab sample` imports it from the checkpoint
    main(["sample", str(checkpoint), "--n", "4", "--out", str(tmp_path / "drawn")])
    assert "toy_gan" in MODEL_KINDS
    assert Image.open(tmp_path / "drawn" / "sample_0003.png").size == (8, 8)
    assert "4 samples and grid.png written" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # the options the kind takes come from its checkpoint
        main(["sample", str(checkpoint), "--input", str(tmp_path)])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("recorded", ["kind only", "nothing"])
def test_checkpoints_written_before_kinds_were_recorded_still_sample(tmp_path, recorded):
    from visionlab.modules.gan import GANModule

    model = GANModule(optimizer=torch.optim.Adam, width=8, latent_dim=8, num_samples=4)
    state = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    if recorded == "kind only":  # what the code wrote before visionlab_target and the sample options
        state["visionlab_module"] = "gan"
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    main(["sample", str(path), "--n", "2", "--out", str(tmp_path / "drawn")])
    assert Image.open(tmp_path / "drawn" / "sample_0001.png").size == (32, 32)


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(UserError, match=r"model kind='gann' is not one of: classifier, gan, inpaint, lapgan"):
        kind_class("gann")


def test_a_backbone_family_of_ones_own_is_found_by_its_dotted_name(make_cfg):
    cfg = make_cfg("backbone.name=toy_kind.toy_cnn", "backbone.pretrained=false", "backbone.input_size=32",
                   "trainer.max_epochs=1", "freeze=none", "optimized_metric=val/acc", "test_after_fit=false")
    assert 0.0 <= run(cfg) <= 1.0
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["hyper_parameters"]["backbone"]["name"] == "toy_cnn"
    assert "backbone.body.block2.conv.weight" in state["state_dict"]


def test_each_kind_is_compared_by_its_own_keys_and_never_by_groups_it_does_not_use(make_cfg):
    from visionlab.modules.base import module_class
    from visionlab.run_summary import hparams_of

    gan = make_cfg("experiment=dcgan_shapes", tiny=False)
    keys = module_class(gan.model).summary_keys(gan)
    choices = {"data": "shapes_mono", "model": "gan", "optimizer": "adam", "backbone": "shapes_net"}
    params = hparams_of(gan, ["experiment=dcgan_shapes"], choices, keys)
    assert {"model.loss", "model.generator", "model.discriminator", "model.d_steps", "model.g_lr",
            "model.ema_decay", "model.diffaugment", "model.image_size"} <= set(params)
    assert not {"backbone", "backbone.name", "freeze", "optimizer.lr"} & set(params)  # a DCGAN uses none
    backbone_d = make_cfg("experiment=gan_backbone_d_shapes", tiny=False)
    assert {"backbone", "freeze"} <= set(module_class(backbone_d.model).summary_keys(backbone_d))
    classifier = make_cfg(tiny=False)
    assert "backbone.name" in module_class(classifier.model).summary_keys(classifier)


def test_a_backbone_source_of_ones_own_builds_trains_lists_stages_and_names_its_downloads(make_cfg, capsys):
    from visionlab.nets.factory import backbone_files, create_backbone

    cfg = make_cfg("backbone.source=toy_kind.toy_hub", "backbone.name=tiny", "backbone.pretrained=false",
                   "backbone.input_size=32", "trainer.max_epochs=1", "freeze=none",
                   "optimized_metric=val/acc", "test_after_fit=false")
    assert 0.0 <= run(cfg) <= 1.0  # visionlab.train and the factory know nothing of toy_hub
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["hyper_parameters"]["backbone"]["recipe"]["source"] == "toy_kind.toy_hub"
    main(["stages", "tiny", "--source", "toy_kind.toy_hub"])
    listed = capsys.readouterr().out
    assert "2 coarse stages" in listed and "1  block2" in listed
    (weights,) = backbone_files("tiny", "toy_kind.toy_hub", pretrained=True)  # what prefetch fetches
    assert weights.what == "toy_hub weights of tiny"
    with pytest.raises(UserError, match="unknown toy_kind.toy_hub backbone 'tinny'; did you mean: tiny"):
        create_backbone("tinny", "toy_kind.toy_hub")
    with pytest.raises(UserError, match="'tiny' is not a timm model but a toy_hub one"):
        create_backbone("tiny", "timm")
