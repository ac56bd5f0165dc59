"""A battery of the mistakes a user makes, run through the real entry point (``visionlab ...``,
``visionlab train`` = ``python train.py``): one per config group, per CLI command, per kind of
file given in the wrong place, per kind of folder, per Trainer option that cannot work with the
data. Each must end in exactly one ``error:`` line naming the problem, exit code 2, no traceback,
and every file that existed before unchanged (new files, such as the run directory Hydra makes,
are allowed). ``bench/mistakes.py`` runs the same list as separate processes and prints how long
each took; the CLI's own checks come before torch loads (see the last test).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from visionlab.cli.main import main

SMALL = [
    "data.train_per_class=4",
    "data.val_per_class=2",
    "data.test_per_class=2",
    "trainer.max_epochs=1",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "data.cache_features=false",
]


@dataclass(frozen=True)
class Mistake:
    """A command line (``{name}`` placeholders name workspace paths) and a fragment of its one line."""

    category: str
    argv: tuple[str, ...]
    message: str


def train(*overrides: str) -> tuple[str, ...]:
    """The command line of ``visionlab train <overrides>`` (``python train.py <overrides>``)."""
    return ("train", *overrides)


MISTAKES = {
    # --- one per config group (python train.py / visionlab train)
    "backbone-unknown-option": Mistake(
        "config group",
        train("backbone=nope"),
        "Could not find 'backbone/nope'; Available options in 'backbone': alexnet,",
    ),
    "backbone-unknown-timm-name": Mistake(
        "config group",
        train("backbone=timm", "backbone.name=resnet_nope"),
        "unknown timm backbone 'resnet_nope'; did you mean",
    ),
    "freeze-unknown-option": Mistake("config group", train("freeze=nope"), "Could not find 'freeze/nope'"),
    "freeze-too-many-stages": Mistake(
        "config group",
        train("freeze=last_n", "freeze.n=999"),
        "freeze.n=999 but shapes_net has only 4 coarse stages",
    ),
    "freeze-unknown-layer": Mistake(
        "config group",
        train("freeze=last_n", "freeze.from_layer=nope"),
        "freeze.from_layer='nope' names no layer",
    ),
    "freeze-milestones-not-a-mapping": Mistake(
        "config group",
        train("freeze=staged", "freeze.milestones=bogus"),
        "freeze.milestones must be a mapping {{epoch: value}}",
    ),
    "data-unknown-option": Mistake("config group", train("data=nope"), "Could not find 'data/nope'"),
    "data-batch-size-0": Mistake(
        "config group", train("data.batch_size=0"), "data.batch_size=0 must be a whole number >= 1"
    ),
    "data-negative-workers": Mistake(
        "config group",
        train("data.num_workers=-3"),
        "data.num_workers=-3 must be a whole number >= 0 or auto",
    ),
    "augment-unknown-fill-mode": Mistake(
        "config group",
        train("augment=keras", "augment.fill_mode=bogus"),
        "augment.fill_mode='bogus' is not a Keras fill mode",
    ),
    "mixup-with-the-feature-cache": Mistake(
        "config group",
        train("mixup=cutmix", "data.cache_features=true"),
        "data.cache_features=true trains the head on cached backbone features, and CutMix (alpha 1) mixes",
    ),
    "mixup-negative-alpha": Mistake(
        "config group", train("mixup.mixup_alpha=-0.2"), "mixup.mixup_alpha=-0.2 must be >= 0"
    ),
    "tune-empty-lr-range": Mistake(
        "config group",
        train("tune=lr_find", "tune.min_lr=1", "tune.max_lr=0.1"),
        "tune.min_lr=1 and tune.max_lr=0.1 must",
    ),
    "optimizer-negative-lr": Mistake(
        "config group", train(*SMALL, "optimizer.lr=-1"), "Invalid learning rate: -1"
    ),
    "optimizer-key-the-target-rejects": Mistake(
        "config group",
        train("+optimizer.learning_rate=1e-3"),
        "optimizer.learning_rate: torch.optim.Adam takes no argument 'learning_rate'; it takes: params, lr,",
    ),
    "optimizer-unknown-key": Mistake(
        "config group",
        train("optimizer.learning_rat=1"),
        "Could not override 'optimizer.learning_rat'; Key 'learning_rat' is not in",
    ),
    "scheduler-unknown-option": Mistake(
        "config group", train("scheduler=nope"), "Could not find 'scheduler/nope'"
    ),
    "scheduler-monitor-never-logged": Mistake(
        "config group",
        train(*SMALL, "scheduler=plateau", "scheduler.monitor=val/nope"),
        "ReduceLROnPlateau conditioned on metric val/nope which is not available",
    ),
    "model-unknown-activation": Mistake(
        "config group",
        train("model.head.activation=bogus"),
        "model.head.activation='bogus' is not one of: relu, gelu, silu, tanh",
    ),
    "model-unknown-compile-backend": Mistake(
        "config group", train("model.compile=turbo"), "model.compile='turbo' is not a torch.compile backend"
    ),
    "model-misspelt-option-of-a-subclass": Mistake(  # SRGANModule passes **options on to its base
        "config group",
        train("experiment=srgan_shapes", "+model.scal=2"),
        "SRGANModule takes no argument 'scal' (did you mean model.scale?)",
    ),
    "model-unknown-gan-loss": Mistake(
        "config group",
        train("model=gan", "model.loss=bogus"),
        "model.loss='bogus' is not one of: bce, hinge, lsgan, wgan_gp",
    ),
    "trainer-unknown-precision": Mistake(
        "config group",
        train("trainer.precision=bogus"),
        "Lightning rejects the settings: Precision 'bogus' is invalid",
    ),
    "trainer-gpu-on-a-cpu-machine": Mistake(
        "config group",
        train("trainer.accelerator=gpu"),
        "Lightning rejects the settings: No supported gpu backend found",
    ),
    "trainer-negative-epochs": Mistake(
        "config group", train("trainer.max_epochs=-2"), "`max_epochs` must be a non-negative integer or -1"
    ),
    "logger-unknown-option": Mistake("config group", train("logger=nope"), "Could not find 'logger/nope'"),
    "callbacks-misspelt-argument": Mistake(
        "config group",
        train("+callbacks.early_stopping.patiense=1"),
        "EarlyStopping takes no argument 'patiense' (did you mean callbacks.early_stopping.patience?)",
    ),
    "callbacks-monitor-never-logged": Mistake(
        "config group",
        train(*SMALL, "callbacks.early_stopping.monitor=val/nope"),
        "Early stopping conditioned on metric `val/nope` which is not available",
    ),
    "experiment-unknown-option": Mistake(
        "config group",
        train("experiment=nope"),
        "Could not find 'experiment/nope'; Available options in 'experiment':",
    ),
    "hparams-search-unknown-option": Mistake(
        "config group", train("hparams_search=nope"), "Could not find 'hparams_search/nope'"
    ),
    "debug-unknown-option": Mistake("config group", train("debug=nope"), "Could not find 'debug/nope'"),
    "seed-not-a-number": Mistake(
        "config group", train("seed=abc"), "invalid literal for int() with base 10: 'abc'"
    ),
    "override-syntax": Mistake(
        "config group", train("optimizer.lr=[1"), "no viable alternative at input '[1'"
    ),
    # --- Trainer options that cannot work with the data or model
    "val-check-beyond-the-epoch": Mistake(
        "trainer option",
        train(*SMALL, "trainer.val_check_interval=100"),
        "`val_check_interval` (100) must be less than or equal to",
    ),
    "limit-val-batches-to-nothing": Mistake(
        "trainer option",
        train(*SMALL, "trainer.limit_val_batches=0.1"),
        "Lightning rejects the settings: You requested",
    ),
    "accumulate-with-a-gan": Mistake(
        "trainer option",
        train("model=gan", "trainer.accumulate_grad_batches=2"),
        "Automatic gradient accumulation is not supported for manual optimization",
    ),
    "gradient-clip-with-a-gan": Mistake(
        "trainer option",
        train("model=gan", "trainer.gradient_clip_val=1"),
        "does not apply to the GAN (manual optimization): set model.grad_clip",
    ),
    # --- a file given in the wrong place
    "resume-from-a-readme": Mistake(
        "file in the wrong place",
        train("ckpt_path={readme}"),
        "ckpt_path={readme} is not a visionlab checkpoint",
    ),
    "resume-a-classifier-from-a-gan": Mistake(
        "file in the wrong place",
        train(*SMALL, "ckpt_path={gan}"),
        "is a gan checkpoint, and this config trains a classifier",
    ),
    "resume-from-a-missing-file": Mistake(
        "file in the wrong place",
        train("ckpt_path={ws}/nope.ckpt"),
        "ckpt_path={ws}/nope.ckpt does not exist",
    ),
    "resume-from-a-folder": Mistake(
        "file in the wrong place", train("ckpt_path={ws}"), "ckpt_path={ws} is a folder"
    ),
    "resume-another-network": Mistake(
        "file in the wrong place",
        train(*SMALL, "ckpt_path={classifier}", "backbone=lenet5"),
        "does not fit the network this config builds",
    ),
    "weights-from-a-readme": Mistake(
        "file in the wrong place", train("backbone.weights={readme}"), "not a file of tensors"
    ),
    "weights-from-a-gan": Mistake(
        "file in the wrong place", train("backbone.weights={gan}"), "does not fit backbone 'shapes_net'"
    ),
    "fid-features-from-a-readme": Mistake(
        "file in the wrong place",
        train("experiment=dcgan_shapes", "model.fid_features={readme}"),
        "model.fid_features='{readme}': use shapes_net",
    ),
    "eval-a-readme": Mistake(
        "file in the wrong place", ("eval", "{readme}"), "is not a visionlab checkpoint"
    ),
    "eval-a-gan": Mistake(
        "file in the wrong place",
        ("eval", "{gan}"),
        "is a gan checkpoint: it can draw (visionlab sample --n); `visionlab eval` needs one that can "
        "classify",
    ),
    "eval-a-kind-that-cannot-be-imported": Mistake(
        "file in the wrong place",
        ("eval", "{unimportable}"),
        "was written by the model kind 'vanished' of vanished_package.models.VanishedModule, whose module is "
        "not on the import path: install its package or add its folder to PYTHONPATH",
    ),
    "predict-with-a-newer-format": Mistake(
        "file in the wrong place",
        ("predict", "{future}", "{folders}/two"),
        "has checkpoint format 99, and this visionlab reads formats 1 to 2",
    ),
    "export-an-srgan": Mistake("file in the wrong place", ("export", "{srgan}"), "is a srgan checkpoint"),
    "predict-with-a-gan": Mistake(
        "file in the wrong place", ("predict", "{gan}", "{folders}/two"), "is a gan checkpoint"
    ),
    "sample-a-classifier": Mistake(
        "file in the wrong place",
        ("sample", "{classifier}"),
        "is a classifier checkpoint: it can classify (visionlab eval / predict), export (visionlab export); "
        "`visionlab sample` needs one that can draw or restore",
    ),
    "eval-a-run-folder": Mistake(
        "file in the wrong place",
        ("eval", "{ws}"),
        "holds no checkpoints/best.ckpt, epoch_*.ckpt or last.ckpt: give a run folder or a .ckpt file",
    ),
    "eval-on-a-folder-of-images": Mistake(
        "file in the wrong place",
        ("eval", "{classifier}", "{folders}/two"),
        "two is a folder of images, not a run: to evaluate on it, give after the checkpoint "
        "data=image_folder data.root=",
    ),
    "predict-on-a-text-file": Mistake(
        "file in the wrong place",
        ("predict", "{classifier}", "{readme}"),
        "holds no readable images (1 other file(s))",
    ),
    # --- kinds of folder
    "folder-empty": Mistake(
        "folder", train("data=image_folder", "data.root={folders}/empty"), "no class sub-folders in"
    ),
    "folder-one-class": Mistake(
        "folder", train("data=image_folder", "data.root={folders}/one"), "only one class ('cls')"
    ),
    "folder-corrupt-image": Mistake(
        "folder",
        train("data=image_folder", "data.root={folders}/corrupt"),
        "bad.png is not a readable image (corrupt or not an image)",
    ),
    "folder-broken-link": Mistake(
        "folder",
        train("data=image_folder", "data.root={folders}/dangling"),
        "gone.png is a broken link (its target is gone)",
    ),
    "folder-symlinked-to-one-class": Mistake(
        "folder",
        train("data=image_folder", "data.root={folders}/link"),
        "only one class ('cls') in {folders}/link",
    ),
    "folder-is-a-file": Mistake(
        "folder", train("data=image_folder", "data.root={readme}"), "is a file, not a folder"
    ),
    "folder-non-ascii-unquoted": Mistake(
        "folder", train("data=image_folder", "data.root={folders}/naïve"), "goes in quotes: 'key=\"value\"'"
    ),
    "folder-non-ascii-one-class": Mistake(
        "folder", train("data=image_folder", 'data.root="{folders}/naïve"'), "only one class ('猫')"
    ),
    "folder-classes-differ-from-checkpoint": Mistake(
        "folder",
        ("eval", "{classifier}", "data=image_folder", "data.root={folders}/two"),
        "the data's classes differ from the checkpoint's",
    ),
    "predict-an-empty-folder": Mistake(
        "folder", ("predict", "{classifier}", "{folders}/empty"), "holds no readable images (0 other file(s))"
    ),
    # --- one per CLI command
    "cli-unknown-command": Mistake("command", ("bogus",), "argument COMMAND: invalid choice: 'bogus'"),
    "eval-without-checkpoint": Mistake("command", ("eval",), "the following arguments are required"),
    "export-unknown-format": Mistake(
        "command",
        ("export", "{classifier}", "--format", "tflite"),
        "argument --format: invalid choice: 'tflite'",
    ),
    "export-unknown-output": Mistake(
        "command",
        ("export", "{classifier}", "--output", "bogus"),
        "argument --output: invalid choice: 'bogus'",
    ),
    "export-into-a-file": Mistake(
        "command", ("export", "{classifier}", "--out", "{readme}"), "is a file: give the folder"
    ),
    "predict-top-k-0": Mistake(
        "command",
        ("predict", "{classifier}", "{folders}/two", "--top-k", "0"),
        "--top-k 0 must be at least 1",
    ),
    "predict-over-an-existing-csv": Mistake(
        "command",
        ("predict", "{classifier}", "{folders}/two", "--out", "{readme}"),
        "exists: give another --out, or --force to replace it",
    ),
    "sample-input-to-a-noise-gan": Mistake(
        "command",
        ("sample", "{gan}", "--input", "{folders}/two"),
        "--input is for checkpoints that restore images (srgan, inpaint)",
    ),
    "sample-srgan-without-input": Mistake(
        "command", ("sample", "{srgan}"), "restores images rather than drawing them: give --input"
    ),
    "sample-mask-on-a-gan": Mistake(
        "command", ("sample", "{gan}", "--mask", "center"), "--mask is for inpaint checkpoints, and"
    ),
    "cas-on-an-unconditional-gan": Mistake(
        "command", ("cas", "{gan}"), "is an unconditional gan: the CAS needs images of a class on demand"
    ),
    "cas-on-a-classifier": Mistake(
        "command", ("cas", "{classifier}"), "is a classifier checkpoint: it can classify"
    ),
    "cas-on-an-srgan": Mistake(
        "command",
        ("cas", "{srgan}"),
        "is a srgan checkpoint: it can restore (visionlab sample --input); `visionlab cas` needs one that "
        "can draw",
    ),
    "sample-zero-images": Mistake("command", ("sample", "{gan}", "--n", "0"), "--n 0 must be at least 1"),
    "sample-label-of-unconditional": Mistake(
        "command",
        ("sample", "{gan}", "--label", "c0", "--out", "{ws}/new"),
        "--label and --per-class need a conditional GAN",
    ),
    "lr-find-on-a-gan": Mistake(
        "command",
        ("lr-find", "experiment=gan_toy2d"),
        "tune=lr_find sweeps the learning rate of one optimizer, and model=gan trains with several",
    ),
    "stages-unknown-backbone": Mistake("command", ("stages", "nope_net"), "unknown timm backbone 'nope_net'"),
    "shapes-unknown-variant": Mistake(
        "command", ("shapes", "nope"), "argument variant: invalid choice: 'nope'"
    ),
    "compare-no-runs": Mistake("command", ("compare", "{folders}/empty"), "no runs under"),
    "compare-a-checkpoint": Mistake("command", ("compare", "{classifier}"), "is not a directory"),
}


def make_folders(root: Path) -> None:
    """Image folders with the mistakes in them (and one good two-class folder)."""

    def images(folder: Path, count: int = 3) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.new("RGB", (20, 20), (40 * index, 0, 0)).save(folder / f"{index}.png")

    (root / "empty").mkdir(parents=True)
    images(root / "one" / "cls")
    images(root / "two" / "a")
    images(root / "two" / "b")
    images(root / "corrupt" / "a")
    images(root / "corrupt" / "b")
    (root / "corrupt" / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    images(root / "dangling" / "a")
    images(root / "dangling" / "b")
    (root / "dangling" / "b" / "gone.png").symlink_to(root / "moved_away.png")
    (root / "link").symlink_to(root / "one", target_is_directory=True)
    images(root / "naïve" / "猫")


def save_module(module, path: Path) -> Path:
    """``module``'s checkpoint as Lightning writes it (its kind included), under ``<run>/checkpoints/``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module.on_save_checkpoint(state := {})
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), **state}, path)
    return path


def build_workspace(ws: Path, run_dir: Path, best: Path, data_dir: Path) -> dict[str, str]:
    """The paths the mistakes name: the classifier run ``run_dir`` and its checkpoint ``best``, GAN
    and SRGAN checkpoints (tiny, untrained), a README, the folders of :func:`make_folders`."""
    from visionlab.modules.gan import GANModule
    from visionlab.modules.srgan import SRGANModule

    make_folders(ws / "folders")
    (ws / "README.md").write_text("# not a checkpoint\n")
    adam = torch.optim.Adam
    gan = save_module(GANModule(optimizer=adam, width=8, latent_dim=8, num_samples=4),
                      ws / "gan_run" / "checkpoints" / "last.ckpt")
    srgan = save_module(SRGANModule(adam, image_size=32, blocks=1, g_width=8, d_width=8, num_samples=2),
                        ws / "srgan_run" / "checkpoints" / "last.ckpt")
    state = torch.load(gan, weights_only=True)
    vanished = {"visionlab_module": "vanished", "visionlab_target": "vanished_package.models.VanishedModule"}
    torch.save(state | vanished, unimportable := ws / "vanished.ckpt")
    torch.save(torch.load(best, weights_only=True) | {"visionlab_format": 99}, future := ws / "future.ckpt")
    return {"unimportable": str(unimportable), "future": str(future), "ws": str(ws),
            "folders": str(ws / "folders"), "readme": str(ws / "README.md"), "gan": str(gan),
            "srgan": str(srgan), "classifier": str(best), "run": str(run_dir), "data": str(data_dir)}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, trained_run, data_dir) -> dict[str, str]:
    """:func:`build_workspace` around the session's tiny classifier run."""
    run_dir, best, _, _ = trained_run
    return build_workspace(tmp_path_factory.mktemp("workspace"), run_dir, best, data_dir)


def snapshot(*roots: str) -> dict[Path, tuple[int, int]]:
    """Every file under ``roots`` (links not followed) and its size and modification time in
    nanoseconds: any write changes them, even one that puts back the same bytes (hashing the 9 MB
    of checkpoints and images twice per mistake took a tenth of the battery's time)."""
    files = {}
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                files[path] = (stat.st_size, stat.st_mtime_ns)
    return files


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    """Commands run from the workspace (outputs there, the session's data directory), with the root
    logger's handlers restored afterwards (Hydra adds its own per run)."""
    monkeypatch.chdir(workspace["ws"])
    monkeypatch.setenv("VISIONLAB_DATA_DIR", workspace["data"])
    monkeypatch.setenv("PROJECT_ROOT", workspace["ws"])
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield workspace
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


@pytest.mark.parametrize("name", MISTAKES)
def test_a_mistake_is_one_line_exit_2_and_changes_nothing(in_workspace, capfd, name):
    mistake = MISTAKES[name]
    argv = [arg.format(**in_workspace) for arg in mistake.argv]
    before = snapshot(in_workspace["ws"], in_workspace["run"])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert exit_info.value.code == 2, err
    assert len(errors) == 1 and mistake.message.format(**in_workspace) in errors[0], err
    assert "Traceback" not in err
    after = snapshot(in_workspace["ws"], in_workspace["run"])
    assert {path: stamp for path, stamp in after.items() if path in before} == before  # nothing changed
    assert before.keys() <= after.keys()  # nothing deleted


def test_the_battery_covers_every_category_and_at_least_40_mistakes():
    categories = {mistake.category for mistake in MISTAKES.values()}
    assert categories == {"config group", "trainer option", "file in the wrong place", "folder", "command"}
    assert len(MISTAKES) >= 40
    groups = {
        arg.split("=")[0].lstrip("+").split(".")[0]
        for m in MISTAKES.values()
        if m.argv[0] == "train"
        for arg in m.argv[1:]
        if arg not in SMALL
    }
    conf = Path(__file__).resolve().parents[1] / "conf"
    every_group = {p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("paths", "hydra")}
    assert every_group <= groups, every_group - groups  # a mistake per config group


def test_the_command_line_checks_answer_before_torch_loads(workspace):
    """A wrong file or value given to a command is refused before the imports that take seconds:
    measured as what the process imported, which does not depend on the machine's speed."""
    script = (
        "import sys\n"
        "from visionlab.cli.main import main\n"
        "for argv in sys.argv[1:]:\n"
        "    try:\n"
        "        main(argv.split('|'))\n"
        "    except SystemExit as exit_:\n"
        "        assert exit_.code == 2, (argv, exit_.code)\n"
        "print(sorted(m for m in ('torch', 'lightning', 'timm') if m in sys.modules))\n"
    )
    names = [
        "eval-a-gan",
        "eval-a-readme",
        "sample-a-classifier",
        "export-unknown-format",
        "predict-top-k-0",
        "predict-over-an-existing-csv",
        "sample-srgan-without-input",
        "predict-with-a-gan",
        "eval-a-run-folder",
        "eval-on-a-folder-of-images",
        "sample-zero-images",
        "eval-a-kind-that-cannot-be-imported",
        "predict-with-a-newer-format",
    ]
    commands = ["|".join(arg.format(**workspace) for arg in MISTAKES[name].argv) for name in names]
    result = subprocess.run(
        [sys.executable, "-c", script, *commands],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr.count("error: ") == len(names)
