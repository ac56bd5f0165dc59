"""``visionlab eval`` from a checkpoint alone: metrics equal the run's, figures written, bad input."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONF_DIR, RUN_OVERRIDES
from PIL import Image

from visionlab.cli.evaluate import cmd_eval
from visionlab.cli.main import main
from visionlab.inference.checkpoint import evaluation_data, load
from visionlab.modules.classifier import ClassifierModule
from visionlab.nets.custom import shapes_net


def test_eval_reproduces_the_test_metrics_of_the_run_and_writes_its_figures(trained_run, capsys):
    run_dir, best, test_acc, overrides = trained_run
    (evaluation,) = cmd_eval([best], overrides, CONF_DIR)
    assert evaluation.accuracy == pytest.approx(test_acc, abs=1e-6)
    assert int(evaluation.confusion.sum()) == len(evaluation.targets) == 6 * 4  # 6 classes x 4 test images
    assert float(evaluation.confusion.diagonal().sum() / evaluation.confusion.sum()) == evaluation.accuracy
    # this evaluation's folder, named by the checkpoint and the overrides (other tests of the session's
    # run evaluate it on other data beside it)
    (written,) = (run_dir / "eval").glob(f"{best.stem}-paths.data_dir=*")
    report = json.loads((written / "eval.json").read_text())
    assert report["accuracy"] == evaluation.accuracy and report["images"] == 24
    assert [row["support"] for row in report["per_class"]] == [4] * 6
    assert (written / "confusion_matrix.png").is_file()
    assert (written / "top_losses.png").is_file() == (evaluation.accuracy < 1)
    assert "macro-F1" in capsys.readouterr().out


def test_class_names_in_any_script_are_drawn_with_one_note_for_the_characters_no_font_has(tmp_path, recwarn):
    """Matplotlib warned once per missing character and drawing (CJK class names: four warnings per
    eval); the characters come back as one set, other warnings still pass."""
    from visionlab.inference.figures import any_script_labels, confusion_figure

    with any_script_labels() as missing:
        figure = confusion_figure(torch.eye(2, dtype=torch.long), ["狗 dog", "cat"], "a run")
        figure.savefig(tmp_path / "confusion.png")
        warnings.warn("another warning", UserWarning, stacklevel=1)
    assert missing <= {"狗"}  # empty where a CJK font is installed
    assert [str(w.message) for w in recwarn] == ["another warning"]
    assert (tmp_path / "confusion.png").stat().st_size > 0


def test_a_confusion_matrix_of_many_classes_is_drawn_indexed_without_counts_at_a_bounded_size():
    """150 classes with a count in each of the 22,500 cells took 40 s to draw (a 1000-class one would
    not fit in memory); a few classes keep their names and counts."""
    import matplotlib.pyplot as plt

    from visionlab.inference.figures import confusion_figure

    few = confusion_figure(torch.eye(5, dtype=torch.long), [f"c{i}" for i in range(5)], "few")
    (ax,) = few.axes[:1]
    assert len(ax.texts) == 25 and [t.get_text() for t in ax.get_xticklabels()] == [f"c{i}" for i in range(5)]
    many = confusion_figure(torch.eye(150, dtype=torch.long), [f"c{i}" for i in range(150)], "many")
    ax = many.axes[0]
    assert not ax.texts and "c7" not in {t.get_text() for t in ax.get_xticklabels()}
    assert "class index" in ax.get_xlabel() and max(many.get_size_inches()) <= 21
    plt.close(few)
    plt.close(many)


def test_a_truncated_backbone_is_rebuilt_from_the_checkpoint_alone(trained_run):
    run_dir, best, _, overrides = trained_run
    model = load(best)
    stages = [s.name for s in model.backbone.stages()]
    assert stages == ["block1", "block2", "block3"]
    state = torch.load(best, weights_only=True)["state_dict"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_a_checkpoint_from_before_the_cut_was_recorded_rebuilds_from_its_weights(trained_run, tmp_path):
    """Older checkpoints lack ``backbone.truncate_after``; a freeze=auto run chose the cut itself."""
    _, best, _, overrides = trained_run
    state = torch.load(best, weights_only=True)
    del state["hyper_parameters"]["backbone"]["truncate_after"]
    for key in ("visionlab_config", "visionlab_capabilities", "visionlab_format"):  # as format 1 wrote it
        del state[key]
    del state["hyper_parameters"]["backbone"]["recipe"]
    for key in ("ema_decay", "channels_last"):
        del state["hyper_parameters"][key]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / ".hydra").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "old.ckpt")
    old_overrides = [o for o in RUN_OVERRIDES if not o.startswith("freeze")] + ["freeze=auto",
                                                                                "freeze.similar=false"]
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(old_overrides))
    model = load(tmp_path / "checkpoints" / "old.ckpt", conf_dir=CONF_DIR)
    assert [s.name for s in model.backbone.stages()] == ["block1", "block2", "block3"]
    assert model.hparams.backbone["truncate_after"] == "block3"  # a re-saved checkpoint records it
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["state_dict"][key]), key


@pytest.mark.parametrize("make, message", [
    (lambda d, best: d / "missing.ckpt", "missing.ckpt does not exist"),
    (lambda d, best: _write(d / "cut.ckpt", best.read_bytes()[:1000]), "is not a visionlab checkpoint (not a "
     "file torch.save wrote, or a truncated one): give a checkpoint that can classify"),
    (lambda d, best: _write(d / "notes.ckpt", b"hello"), "is not a visionlab checkpoint"),
    (lambda d, best: _write(d / "README.md", (CONF_DIR.parent / "README.md").read_bytes()),
     "is not a visionlab checkpoint"),
    (lambda d, best: _save(d / "gan.ckpt", {"state_dict": {}, "visionlab_module": "gan"}),
     "is a gan checkpoint, which serves no command (it can only be resumed); `visionlab eval` needs one that "
     "can classify"),
    (lambda d, best: _save(d / "old_gan.ckpt",
                           {"state_dict": {}, "hyper_parameters": {"latent_dim": 8, "generator": "dcgan"}}),
     "is a visionlab checkpoint: it can draw (visionlab sample --n); `visionlab eval` needs one that can "
     "classify"),
    (lambda d, best: _save(d / "other.ckpt", {"state_dict": {}, "hyper_parameters": {}}),
     "is a visionlab checkpoint, which serves no command"),
])
def test_bad_checkpoints_are_one_line_errors(trained_run, tmp_path, capsys, make, message):
    _, best, _, overrides = trained_run
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(make(tmp_path, best)), *overrides])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and err.count("\n") == 1
    assert "weights_only" not in err  # never the advice to unpickle an untrusted file


def test_data_with_other_classes_is_refused_naming_the_difference(trained_run, capsys):
    _, best, _, overrides = trained_run
    with pytest.raises(SystemExit):
        main(["eval", str(best), *overrides, "data=shapes", "data.train_per_class=2"])
    err = capsys.readouterr().err
    assert ("the data's classes differ from the checkpoint's (missing chevron, crescent, diamond, heart, "
            "tshape; not in the checkpoint: circle, cross") in err


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _save(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


def test_predict_writes_one_row_per_image_with_the_checkpoints_classes(trained_run, data_dir, tmp_path,
                                                                        capsys):
    _, best, _, _ = trained_run
    folder = tmp_path / "images"
    source = next(data_dir.rglob("test"))  # the run's test images, in class folders
    images = sorted(source.rglob("*.png"))[:10]
    for index, path in enumerate(images):
        target = folder / ("nested" if index % 2 else "") / f"{index}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (folder / "notes.txt").write_text("not an image")
    main(["predict", str(best), str(folder), "--out", str(tmp_path / "p.csv"), "--top-k", "6"])
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    classes = torch.load(best, weights_only=True)["hyper_parameters"]["class_names"]
    assert len(rows) == 10 and all(row["predicted"] in classes for row in rows)
    for row in rows:
        assert row["predicted"] == row["class_1"]
        assert sorted(row[f"class_{r}"] for r in range(1, 7)) == classes
        assert sum(float(row[f"probability_{r}"]) for r in range(1, 7)) == pytest.approx(1.0, abs=1e-4)
    out = capsys.readouterr().out
    assert "10 image(s) predicted" in out and "skipped 1 file(s) that are not images" in out


def test_predict_without_top_k_gives_three_classes_or_all_of_a_binary_model(tmp_path):
    images = []
    for index, size in enumerate((20, 48, 90)):  # the model resizes them as it was trained
        images.append(tmp_path / f"{index}.png")
        Image.new("RGB", (size, size), (40 * index, 90, 200)).save(images[-1])
    for classes in (["cat", "dog"], ["a", "b", "c", "d"]):
        model = ClassifierModule(shapes_net(input_size=32), len(classes), class_names=classes)
        predictions = model.predict(images, batch_size=2)
        assert [p.source for p in predictions] == images
        for p in predictions:
            assert len(set(p.classes)) == len(p.classes) == min(3, len(classes))
            assert set(p.classes) <= set(classes)
            assert p.probabilities == sorted(p.probabilities, reverse=True)


@pytest.mark.parametrize("args, message", [
    (["{empty}"], "holds no readable images"),
    (["{image}", "--top-k", "7"], "--top-k 7 must be between 1 and the model's 6 classes"),
])
def test_predict_bad_input_is_one_line(trained_run, data_dir, tmp_path, capsys, args, message):
    _, best, _, _ = trained_run
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    image = next(data_dir.rglob("*.png"))
    args = [a.format(empty=tmp_path / "empty", image=image) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(best), *args, "--out", str(tmp_path / "p.csv")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.numerics
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_with_a_dynamic_batch_and_writes_the_preprocessing(trained_run, tmp_path, fmt,
                                                                                  capfd):
    from visionlab.cli.export import cmd_export
    from visionlab.inference.export import TOLERANCE, run_exported

    _, best, _, overrides = trained_run
    out = tmp_path / fmt
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # TorchScript's deprecation notes are not shown
        assert cmd_export(best, fmt, out, "probabilities", CONF_DIR, overrides) <= TOLERANCE
    printed = capfd.readouterr()
    assert "[torch.onnx]" not in printed.out + printed.err  # the exporter's 8 progress lines
    assert printed.out.count("\n") == 2  # what was written, and how it was verified
    model = next(p for p in out.iterdir() if p.name.startswith("model."))
    preprocessing = json.loads((out / "preprocessing.json").read_text())
    trained = load(best)
    assert preprocessing["class_names"] == trained.class_names and preprocessing["input_size"] == [3, 64, 64]
    assert "EXIF orientation applied" in preprocessing["decoding"]  # what a deployment must do first
    test_set = evaluation_data(trained, overrides).test_set
    images = torch.stack([test_set[i][0] for i in range(3)])  # another batch size
    with torch.no_grad():
        expected = trained(images).softmax(dim=-1)
    torch.testing.assert_close(run_exported(model, fmt, images), expected, atol=TOLERANCE, rtol=0)


def test_unknown_export_format_lists_the_formats(trained_run, tmp_path, capsys):
    _, best, _, _ = trained_run
    with pytest.raises(SystemExit):
        main(["export", str(best), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert ("error: visionlab export: argument --format: invalid choice: 'tflite' (choose from 'onnx', "
            "'torchscript')") in capsys.readouterr().err


def test_predict_writes_beside_the_run_and_never_over_an_existing_csv(trained_run, data_dir, tmp_path, capsys,
                                                                      monkeypatch):
    run_dir, best, _, _ = trained_run
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, path in enumerate(sorted(next(data_dir.rglob("test")).rglob("*.png"))[:2]):
        (folder / f"{index}.png").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)  # never the current directory
    main(["predict", str(best), str(folder)])
    written = run_dir / "predictions" / "photos.csv"
    assert written.is_file() and not (tmp_path / "predictions.csv").exists()
    written.write_text("the user's edits")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(best), str(folder)])
    assert exit_info.value.code == 2 and "--force to replace it" in capsys.readouterr().err
    assert written.read_text() == "the user's edits"
    main(["predict", str(best), str(folder), "--force"])
    assert written.read_text().startswith("path,predicted,probability")


def test_top_losses_are_the_most_confidently_wrong_first():
    from visionlab.inference.evaluate import Evaluation

    # image 0: wrong at 0.45 with the truth at 0.01 (the highest loss); image 2: wrong at 0.90
    probabilities = torch.tensor([[0.01, 0.45, 0.54], [0.80, 0.10, 0.10], [0.05, 0.90, 0.05],
                                  [0.30, 0.60, 0.10]])
    targets = torch.tensor([0, 0, 0, 0])
    losses = -probabilities[torch.arange(4), targets].log()
    predictions = probabilities.argmax(dim=1)
    evaluation = Evaluation(["a", "b", "c"], torch.zeros(3, 3), losses, predictions, targets,
                            probabilities.max(dim=1).values)
    assert losses.argmax() == 0  # ordered by loss, image 0 would lead
    assert evaluation.most_confidently_wrong(16) == [2, 3, 0]  # wrong at 0.90, 0.60, 0.54


def test_tta_averages_the_softmax_over_its_views_and_none_is_the_plain_score():
    from visionlab.data.tta import TTA_VIEWS, averaged_log_probabilities, centre_crop

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x = torch.randn(5, 3, 8, 8)
    plain = model(x).log_softmax(dim=-1)
    assert torch.equal(averaged_log_probabilities(model, x, TTA_VIEWS["none"]), plain)  # bit for bit
    flipped = (plain.exp() + model(x.flip(-1)).softmax(dim=-1)) / 2
    torch.testing.assert_close(averaged_log_probabilities(model, x, TTA_VIEWS["flip"]).exp(), flipped)
    assert len(TTA_VIEWS["flip_crop"]) == 4 and centre_crop(x).shape == x.shape
    symmetric = torch.randn(2, 3, 8, 4)
    symmetric = torch.cat([symmetric, symmetric.flip(-1)], dim=-1)  # a mirror image of itself
    torch.testing.assert_close(averaged_log_probabilities(model, symmetric, TTA_VIEWS["flip"]),
                               model(symmetric).log_softmax(dim=-1))


def test_eval_with_tta_reports_it_beside_the_plain_score(trained_run, capsys):
    run_dir, best, test_acc, overrides = trained_run
    (plain,) = cmd_eval([best], overrides, CONF_DIR, tta="flip")
    assert plain.accuracy == pytest.approx(test_acc, abs=1e-6)  # the figures stay the plain model's
    out = capsys.readouterr().out
    assert f"accuracy {plain.accuracy:.4f}" in out and "with --tta flip: accuracy" in out
    written = next(p for p in (run_dir / "eval").iterdir() if (p / "eval.json").is_file())
    report = json.loads((written / "eval.json").read_text())
    assert report["tta"]["views"] == "flip" and 0.0 <= report["tta"]["accuracy"] <= 1.0


def test_a_folder_of_images_with_a_readme_beside_them_is_still_refused_as_no_run(tmp_path):
    from visionlab.cli.evaluate import refuse_a_folder_of_images
    from visionlab.errors import UserError

    for name in ("a", "b"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "photos" / name / "0.png")
    (tmp_path / "photos" / "README.txt").write_text("where the photos come from")
    with pytest.raises(UserError, match="photos is a folder of images, not a run: .* data=image_folder"):
        refuse_a_folder_of_images(tmp_path / "photos")
