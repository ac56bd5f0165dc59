"""A trained model travels: a checkpoint copied anywhere is used without its run folder or ``conf/``,
through the CLI and through Python (``visionlab.load``, Lightning's ``load_from_checkpoint``) with the
same numbers; what a module serves is its declared capabilities, so a kind defined outside
visionlab is evaluated, used and exported like a built-in one; checkpoints written before they
were self-contained keep working through their run folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF_DIR
from omegaconf import OmegaConf, open_dict
from PIL import Image

import visionlab
from visionlab.cli.main import main
from visionlab.errors import UserError
from visionlab.modules.base import MODEL_KINDS
from visionlab.modules.classifier import ClassifierModule
from visionlab.modules.gan import GANModule
from visionlab.modules.inpaint import InpaintModule
from visionlab.modules.lapgan import LAPGANModule
from visionlab.modules.srgan import SRGANModule

LEGACY_RUN = Path(__file__).parent / "data" / "legacy_classifier_run"


@pytest.fixture
def nowhere(tmp_path, monkeypatch) -> Path:
    """An empty working folder, and no ``conf/`` in reach (not even the checkout's)."""
    monkeypatch.setattr("visionlab.project.CHECKOUT_CONF", tmp_path / "no_conf")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    return empty


def copy_test_images(data_dir: Path, folder: Path, count: int = 6) -> list[Path]:
    """``count`` of the test images of the trained run's data (shapes_target, at the model's size)
    copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(next(data_dir.rglob("shapes_target-*/test")).rglob("*.png"))[:count]
    for index, source in enumerate(sources):
        shutil.copy(source, folder / f"{index}.png")
    return sorted(folder.glob("*.png"))


def read_csv(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_a_copied_classifier_checkpoint_predicts_evaluates_and_exports_from_an_empty_folder(
        trained_run, data_dir, tmp_path, nowhere, capsys):
    run_dir, best, test_acc, _ = trained_run
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copied = shutil.copy(best, elsewhere / "model.ckpt")
    images = copy_test_images(data_dir, tmp_path / "photos")
    main(["predict", str(copied), str(tmp_path / "photos"), "--top-k", "2"])
    rows = read_csv(elsewhere / "predictions" / "photos.csv")  # beside the copy: it has no run folder
    model = visionlab.load(copied)
    predictions = model.predict(images, top_k=2)  # the CLI's numbers, from Python
    assert [row["path"] for row in rows] == [str(p) for p in images]
    assert [[row["class_1"], row["class_2"]] for row in rows] == [p.classes for p in predictions]
    assert [float(row["probability_1"]) for row in rows] == [round(p.probabilities[0], 6)
                                                             for p in predictions]
    main(["eval", str(copied)])  # the run's test data, as the checkpoint's config names it
    report = json.loads(next((elsewhere / "eval").rglob("eval.json")).read_text())
    assert report["accuracy"] == pytest.approx(test_acc, abs=1e-6) and report["images"] == 24
    main(["export", str(copied), "--format", "torchscript"])
    assert (elsewhere / "export" / "torchscript" / "model.pt").is_file()
    assert "verified on 8 test images" in capsys.readouterr().out
    assert not any(nowhere.iterdir())  # nothing written where the commands ran


def test_eval_on_another_folder_scores_every_image_and_on_the_runs_own_its_held_out_split(
        trained_run, data_dir, tmp_path, capsys):
    from visionlab.inference.checkpoint import another_image_folder

    _, best, _, _ = trained_run
    test_split = next(data_dir.rglob("shapes_target-*/test"))  # <class>/ folders the run never trained on
    folder = tmp_path / "photos"
    shutil.copytree(test_split, folder)
    main(["eval", str(best), "data=image_folder", f"data.root={folder}"])
    assert "on 24 test images" in capsys.readouterr().out  # all of them, not a validation fifth
    image_folder = {"_target_": "visionlab.data.image_folder.ImageFolderDataModule", "root": str(folder)}
    own = OmegaConf.create({**image_folder, "root": f"{folder}/../photos"})  # the same, written otherwise
    assert not another_image_folder(own, image_folder)  # the run's own folder: its held-out split
    assert another_image_folder(OmegaConf.create(image_folder), {**image_folder, "root": str(test_split)})
    shapes = OmegaConf.create({"_target_": "visionlab.data.shapes_datamodule.ShapesDataModule"})
    assert not another_image_folder(shapes, {})  # its own test split


def test_predict_takes_paths_pil_images_and_tensors_with_the_same_preprocessing(trained_run, data_dir,
                                                                                 tmp_path):
    _, best, _, _ = trained_run
    paths = copy_test_images(data_dir, tmp_path / "photos", 4)
    model = visionlab.load(best)
    pils = [Image.open(path).convert("RGB") for path in paths]
    uint8 = torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in pils])
    from_paths = model.probabilities(paths)
    assert from_paths.shape == (4, 6) and torch.allclose(from_paths.sum(-1), torch.ones(4))
    assert torch.equal(model.probabilities(pils), from_paths)
    # a batch tensor, in slices (another batch size: the kernels may round the last bit differently)
    torch.testing.assert_close(model.probabilities(uint8, batch_size=3), from_paths, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.probabilities(uint8.float() / 255), from_paths, atol=1e-5, rtol=0)
    flipped = model.probabilities(paths, tta="flip")
    assert not torch.equal(flipped, from_paths) and torch.allclose(flipped.sum(-1), torch.ones(4))
    (single,) = model.predict(paths[0])
    assert single.source == paths[0] and single.probabilities[0] == pytest.approx(float(from_paths[0].max()))


def test_a_16_bit_or_float_image_predicts_as_its_8_bit_twin(trained_run, data_dir, tmp_path):
    """Pillow's own conversion clipped 16-bit pixels to 255 (an almost white image); they are scaled."""
    _, best, _, _ = trained_run
    (path,) = copy_test_images(data_dir, tmp_path / "photos", 1)
    grey = np.asarray(Image.open(path).convert("L"))
    twins = {"8-bit.png": Image.fromarray(grey),
             "16-bit.png": Image.fromarray(grey.astype(np.uint16) * 257),  # 0..65535, as a 16-bit file holds
             "float.tiff": Image.fromarray(grey.astype(np.float32) / 255)}  # 0..1, as normalised data is
    for name, image in twins.items():
        image.save(tmp_path / name)
    assert [Image.open(tmp_path / name).mode for name in twins] == ["L", "I;16", "F"]
    model = visionlab.load(best)
    from_files = model.probabilities([tmp_path / name for name in twins])
    assert torch.equal(from_files[1], from_files[0]) and torch.equal(from_files[2], from_files[0])
    alone = model.probabilities([tmp_path / "8-bit.png"])  # one image: the same batch size as below
    assert torch.equal(model.probabilities([Image.open(tmp_path / "16-bit.png")]), alone)


def test_visionlab_load_takes_a_run_folder_and_a_device_and_keeps_the_average_unless_asked(trained_run):
    run_dir, best, _, _ = trained_run
    model = visionlab.load(run_dir, device="cpu")
    assert isinstance(model, ClassifierModule) and not model.training and model.device.type == "cpu"
    assert model.capabilities == {"classify", "export"}
    state = torch.load(best, weights_only=True)["state_dict"]
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    assert model.run_config["paths"]["output_dir"] == str(run_dir)


def save(module, path: Path) -> Path:
    """``module``'s checkpoint as Lightning writes it, with what the module records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module.on_save_checkpoint(state := {})
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), **state}, path)
    return path


def adam(**kwargs):
    return torch.optim.Adam


KINDS = {
    "gan": lambda: GANModule(adam(), width=8, latent_dim=8, num_samples=4, num_classes=3, conditional=True,
                             class_names=["a", "b", "c"], ema_decay=0.9),
    "lapgan": lambda: LAPGANModule(adam(), image_size=32, levels=3, width=8, detail_width=8, latent_dim=8,
                                   num_samples=4),
    "srgan": lambda: SRGANModule(adam(), image_size=32, blocks=1, g_width=8, d_width=8, num_samples=2),
    "inpaint": lambda: InpaintModule(adam(), image_size=32, depth=3, g_width=8, d_width=8, num_samples=2),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_load_from_checkpoint_works_for_every_generative_kind_and_matches_the_trained_module(kind, tmp_path):
    torch.manual_seed(0)
    module = KINDS[kind]().eval()
    path = save(module, tmp_path / "model.ckpt")
    loaded = type(module).load_from_checkpoint(path)
    assert type(loaded) is type(module) and not loaded.training
    assert loaded.capabilities == module.capabilities == set(torch.load(path)["visionlab_capabilities"])
    assert len(loaded.capabilities) == 1
    if "draw" in loaded.capabilities:
        torch.testing.assert_close(loaded.draw(4, seed=3), module.draw(4, seed=3))
        assert loaded.draw(4, seed=3).shape == (4, 3, 32, 32) and 0 <= float(loaded.draw(2, seed=1).min())
    else:
        image = torch.rand(3, 32, 32)
        (restored,) = loaded.restore(image)
        (expected,) = module.restore(image)
        assert restored.keys() == expected.keys()
        for name in restored:
            torch.testing.assert_close(restored[name], expected[name])
    with pytest.raises(UserError, match="rebuilt for sampling and has no optimizer"):
        loaded.configure_optimizers()


def test_load_from_checkpoint_of_the_classifier_is_the_loaded_model_and_refuses_another_kind(trained_run,
                                                                                            tmp_path):
    _, best, _, _ = trained_run
    loaded = ClassifierModule.load_from_checkpoint(best)
    assert not loaded.training and loaded.optimizer_factory is None
    image = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded.probabilities(image), visionlab.load(best).probabilities(image))
    with pytest.raises(UserError, match="rebuilt for inference and has no optimizer"):
        loaded.configure_optimizers()
    with pytest.raises(UserError, match=r"a ClassifierModule \(model kind 'classifier'\), not a GANModule"):
        GANModule.load_from_checkpoint(best)
    with pytest.raises(TypeError, match="takes no hparams_file"):
        ClassifierModule.load_from_checkpoint(best, hparams_file="hparams.yaml")


def test_a_python_call_a_model_does_not_serve_names_what_it_serves(trained_run, tmp_path):
    _, best, _, _ = trained_run
    gan = visionlab.load(save(KINDS["gan"](), tmp_path / "gan.ckpt"))
    with pytest.raises(UserError, match="evaluate needs a model that can classify; this gan serves: draw"):
        visionlab.evaluate(gan)
    with pytest.raises(UserError, match="label 'd' is not a class of this GAN: use one of a, b, c"):
        gan.draw(2, "d")
    assert gan.draw(3, "b", seed=0).shape == (3, 3, 32, 32)


def test_the_cli_draws_and_restores_exactly_what_python_returns(trained_run, tmp_path, data_dir):
    gan = save(KINDS["gan"](), tmp_path / "gan" / "model.ckpt")
    main(["sample", str(gan), "--n", "4", "--seed", "3", "--label", "c", "--out", str(tmp_path / "drawn")])
    drawn = visionlab.load(gan).draw(4, "c", seed=3)
    for index, image in enumerate(drawn):
        written = torch.from_numpy(np.array(Image.open(tmp_path / "drawn" / f"sample_{index:04d}.png")))
        assert torch.equal(written.permute(2, 0, 1), image.mul(255).add(0.5).clamp(0, 255).to(torch.uint8))
    inpainter = save(KINDS["inpaint"](), tmp_path / "inpaint" / "model.ckpt")
    photos = copy_test_images(data_dir, tmp_path / "photos", 2)
    main(["sample", str(inpainter), "--input", str(tmp_path / "photos"), "--seed", "5",
          "--out", str(tmp_path / "filled")])
    restored = visionlab.load(inpainter).restore(photos, seed=5)
    for index, path in enumerate(photos):
        for name in ("masked", "inpainted"):
            written = np.array(Image.open(tmp_path / "filled" / f"{path.stem}_{name}.png"))
            expected = restored[index][name].mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
            assert np.array_equal(written, expected.numpy())


def test_a_kind_defined_outside_visionlab_is_trained_evaluated_used_and_exported(make_cfg, tmp_path, data_dir,
                                                                                capsys):
    from visionlab.train import run

    cfg = make_cfg("trainer.max_epochs=2", "callbacks.early_stopping=null", "freeze=none")
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "toy_classifier.ToyClassifier", "width": 8,
                                      "image_size": 32})
    test_acc = run(cfg)  # visionlab.train knows nothing of toy_classifier
    checkpoint = next((Path(cfg.paths.output_dir) / "checkpoints").glob("epoch_*.ckpt"))
    assert torch.load(checkpoint, weights_only=True)["visionlab_capabilities"] == ["classify", "export"]
    MODEL_KINDS.discard("toy_classifier")  # as in a fresh process: the checkpoint names its module
    main(["eval", str(checkpoint)])
    report = json.loads(next(Path(cfg.paths.output_dir).rglob("eval.json")).read_text())
    assert report["accuracy"] == pytest.approx(test_acc, abs=1e-6)
    images = copy_test_images(data_dir, tmp_path / "photos", 5)
    main(["predict", str(checkpoint), str(tmp_path / "photos"), "--out", str(tmp_path / "p.csv")])
    model = visionlab.load(checkpoint)
    assert type(model).__name__ == "ToyClassifier" and not isinstance(model, ClassifierModule)
    assert [row["predicted"] for row in read_csv(tmp_path / "p.csv")] == [p.classes[0]
                                                                         for p in model.predict(images)]
    main(["export", str(checkpoint), "--format", "torchscript", "--out", str(tmp_path / "deploy")])
    from visionlab.inference.export import run_exported

    batch = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = model(batch).softmax(-1)
    torch.testing.assert_close(run_exported(tmp_path / "deploy" / "model.pt", "torchscript", batch), expected)
    preprocessing = json.loads((tmp_path / "deploy" / "preprocessing.json").read_text())
    assert preprocessing["class_names"] == model.class_names
    assert visionlab.evaluate(model).accuracy == pytest.approx(test_acc, abs=1e-6)
    assert "5 image(s) predicted" in capsys.readouterr().out


def test_exports_of_two_formats_share_a_folder_and_neither_is_overwritten_without_force(trained_run, tmp_path,
                                                                                        capsys):
    _, best, _, _ = trained_run
    out = tmp_path / "deploy"
    main(["export", str(best), "--format", "torchscript", "--out", str(out)])
    main(["export", str(best), "--format", "onnx", "--out", str(out)])
    assert {p.name for p in out.iterdir()} == {"model.pt", "model.onnx", "preprocessing.json"}
    written = (out / "model.pt").stat().st_mtime_ns
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(best), "--format", "torchscript", "--out", str(out)])
    assert exit_info.value.code == 2 and f"{out / 'model.pt'} exists" in capsys.readouterr().err
    other = tmp_path / "other"
    main(["export", str(best), "--format", "torchscript", "--out", str(other)])
    with pytest.raises(SystemExit):  # another output would rewrite preprocessing.json
        main(["export", str(best), "--format", "onnx", "--out", str(other), "--output", "logits"])
    assert "preprocessing.json exists" in capsys.readouterr().err and not (other / "model.onnx").exists()
    assert (out / "model.pt").stat().st_mtime_ns == written


def test_a_checkpoint_written_before_checkpoints_were_self_contained_works_through_its_run_folder(tmp_path):
    """``tests/data/legacy_classifier_run`` was written by train.py at commit 40578af (LeNet-5 with a weight
    EMA); ``expected.json`` holds the probabilities that commit's code computed from it."""
    expected = json.loads((LEGACY_RUN / "expected.json").read_text())
    model = visionlab.load(LEGACY_RUN, conf_dir=CONF_DIR)
    x = torch.linspace(-2, 2, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32)
    with torch.no_grad():
        probabilities = model(x).softmax(-1)
    torch.testing.assert_close(probabilities, torch.tensor(expected["probabilities"]), atol=1e-5, rtol=0)
    assert model.class_names == expected["class_names"] and model.weight_ema is None  # the average adopted
    save(model, tmp_path / "resaved" / "model.ckpt")  # saved again, it is self-contained
    resaved = visionlab.load(tmp_path / "resaved" / "model.ckpt")
    with torch.no_grad():
        torch.testing.assert_close(resaved(x).softmax(-1), probabilities)
    copied = shutil.copy(LEGACY_RUN / "checkpoints" / "epoch_000.ckpt", tmp_path / "old.ckpt")
    with pytest.raises(UserError, match="written before checkpoints held their run's config, and no .* is "
                                        "beside it: keep it in its run directory"):
        visionlab.load(copied, conf_dir=CONF_DIR)


def test_a_checkpoint_records_the_runs_paths_as_absolute_ones(make_cfg, tmp_path, monkeypatch):
    """A run launched with relative paths (the default PROJECT_ROOT is '.') still names its data once
    its checkpoint is used from another folder."""
    from omegaconf import open_dict

    from visionlab.modules.base import plain_run_config

    monkeypatch.chdir(tmp_path)
    cfg = make_cfg()
    with open_dict(cfg):
        cfg.paths.root_dir, cfg.paths.data_dir, cfg.paths.cache_dir = ".", "${paths.root_dir}/data", None
    paths = plain_run_config(cfg)["paths"]
    assert paths["data_dir"] == str(tmp_path / "data") and paths["root_dir"] == str(tmp_path)
    assert paths["cache_dir"] is None
