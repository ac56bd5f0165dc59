"""The docs cannot silently rot: every relative link and image in README.md and docs/ resolves (the
file, and the heading an anchor names), and every ``python train.py`` and ``visionlab`` command in
their bash blocks (collected with mktestdocs) is one the project accepts: a training command's
overrides compose with ``conf/`` (Hydra's own checks: an unknown group option, key or value type is
refused), and a ``visionlab`` command parses with the commands' own parser. Placeholders (``<date>``,
``~/photos``, ``model.ckpt``) are filled with stand-ins of the right shape.

The tests marked ``docs`` (a CI step of their own, ``pytest -m docs -n 0``) run them: every training
command in a fast mode, then every ``visionlab`` command on runs of its kind made in a fast mode.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR
from mktestdocs import grab_code_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Words in the docs that stand for a user's value; each becomes a value of the same shape.
PLACEHOLDERS = {"<date>/<time>": "2026-12-07/10-00-00", "<run>": "2026-12-07/10-00-00",
                "<date>": "2026-12-07", "<time>": "10-00-00", "~/": "/home/user/"}
FLAGS = {"-m", "--multirun"}


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def headings(path: Path) -> set[str]:
    """The anchors of ``path``'s headings (outside code blocks)."""
    anchors, in_code = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(slug(line.lstrip("#")))
    return anchors


def links(path: Path) -> list[str]:
    """The relative link and image targets of ``path`` (outside code blocks)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not t.startswith(("http://", "https://", "mailto:"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_and_image_resolves(doc):
    broken = []
    for target in links(doc):
        file, _, anchor = target.partition("#")
        resolved = (doc.parent / file).resolve() if file else doc
        if not resolved.exists():
            broken.append(f"{target}: no {resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in headings(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, broken


def commands() -> list[tuple[str, str]]:
    """(doc name, command) for every ``python train.py`` / ``visionlab`` command in a bash block, without
    its comment, placeholders filled."""
    found = []
    for doc in DOCS:
        for block in grab_code_blocks(doc.read_text(), lang="bash"):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                for part in (p.strip() for p in line.split("&&")):
                    if part.startswith(("python train.py", "visionlab ")):
                        for placeholder, value in PLACEHOLDERS.items():
                            part = part.replace(placeholder, value)
                        found.append((doc.name, part))
    return found


COMMANDS = commands()


def test_the_docs_show_commands_of_every_kind():
    names = {shlex.split(command)[1] for _, command in COMMANDS if command.startswith("visionlab")}
    assert len(COMMANDS) > 50 and {"compare", "board", "eval", "predict", "export", "sample"} <= names


def job_overrides(command: str) -> list[list[str]]:
    """The overrides of each job a ``python train.py`` command line makes: once per value of its sweeps
    (every sweep's values taken in step), so that each value is composed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words = [word for word in shlex.split(command)[2:] if word not in FLAGS]
    options = []
    for word, override in zip(words, OverridesParser.create().parse_overrides(words), strict=True):
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [None]
        key = override.get_key_element()
        options.append([word if value is None else f"{key}={value}" for value in values])
    return [[o[job % len(o)] for o in options] for job in range(max((len(o) for o in options), default=1))]


def test_every_training_command_composes():
    """Each job of each ``python train.py`` line (and of ``visionlab train`` / ``lr-find``) composes."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    from visionlab.cli.commands import COMMANDS as REGISTERED
    from visionlab.cli.main import load_commands

    load_commands()
    lines = [c for c in COMMANDS if c[1].startswith("python train.py")]
    lines += [(doc, "python train.py " + " ".join(shlex.split(command)[2:])) for doc, command in COMMANDS
              if command.startswith("visionlab") and REGISTERED[shlex.split(command)[1]].hydra]
    jobs = {tuple(overrides): (doc, command)
            for doc, command in lines for overrides in job_overrides(command)}
    broken = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides, (doc, command) in jobs.items():
            try:  # Hydra's own node only when an override sets it (composing it costs 0.1 s a job)
                compose(config_name="train", overrides=list(overrides),
                        return_hydra_config=any(o.startswith("hydra") for o in overrides))
            except HydraException as err:
                broken.append(f"{doc}: {command}: {str(err).splitlines()[0]}")
    assert len(lines) > 40 and not broken, broken


def test_every_visionlab_command_parses():
    """Each ``visionlab`` line names a command and only options it takes (``[optional]`` parts left out)."""
    from visionlab.cli.commands import COMMANDS as REGISTERED
    from visionlab.cli.main import build_parser

    parser, broken = build_parser(), []
    for doc, command in COMMANDS:
        words = [w for w in shlex.split(command)[1:] if not (w.startswith("[") or w.endswith("]"))]
        if not command.startswith("visionlab") or REGISTERED[words[0]].hydra:
            continue
        try:
            args, unknown = parser.parse_known_args(words)
        except SystemExit:
            broken.append(f"{doc}: {command}: argparse refused it")
            continue
        if unknown and not REGISTERED[words[0]].trailing_overrides:
            broken.append(f"{doc}: {command}: unrecognized {unknown}")
    assert not broken, broken


# Why a training command of the docs is not run by test_every_training_command_runs_in_a_fast_mode.
def skip_reason(cfg) -> str | None:
    """A reason to skip running a composed command here (no GPU, no cluster, no network), or None."""
    if cfg.trainer.get("accelerator") == "gpu" or "16-mixed" == str(cfg.trainer.get("precision")):
        return "needs a GPU"
    if "submitit" in str(cfg.hydra.launcher.get("_target_", "")):
        return "needs a SLURM cluster"
    if "ddp" in str(cfg.trainer.get("strategy", "")):
        return "starts processes of its own (tests/test_ddp.py runs DDP on the CPU in a subprocess)"
    if "torchvision_datasets" in str(cfg.data.get("_target_", "")):
        return "downloads a dataset"
    backbone = cfg.get("backbone") or {}
    hub = backbone.get("source") in ("timm", "torchvision")
    if backbone.get("pretrained") and hub and not backbone.get("weights"):
        return "downloads pretrained weights"
    if cfg.get("ckpt_path"):
        return "resumes a run the reader made"
    return None


def fast(cfg) -> list[str]:
    """Overrides that make a run of ``cfg`` short: two batches of one epoch, tiny shapes splits, two
    Optuna trials, a short range test."""
    overrides = ["debug=fast", "callbacks.progress_bar=null", "callbacks.model_summary=null"]
    if "shapes" in str(cfg.data.get("_target_", "")):
        overrides += ["data.train_per_class=4", "data.val_per_class=2", "data.test_per_class=2"]
    if "visionlab_optuna" in str(cfg.hydra.sweeper.get("_target_", "")):
        overrides += ["hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1"]
    if cfg.get("tune"):
        overrides += ["tune.num_steps=10", "tune.window=2"]
    return overrides


def user_folders(project: Path) -> Path:
    """The user's image folders the docs name (``~/photos``...), made of shapes_target's test split
    under ``project/home/user``, and a single image ``project/photo.png``: that home folder."""
    from visionlab.cli.main import main

    main(["shapes", "shapes_target", "--out", str(project / "shapes")])
    home, images = project / "home" / "user", project / "shapes" / "shapes_target" / "test"
    for name in {m for _, c in COMMANDS for m in re.findall(r"/home/user/([\w-]+)", c)}:
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(images, target_is_directory=True)
    (project / "photo.png").symlink_to(next(images.rglob("*.png")))
    (project / "folder").symlink_to(next(p for p in images.iterdir() if p.is_dir()), target_is_directory=True)
    return home


def train_fast(*overrides: str, after: tuple[str, ...] = ()) -> None:
    """``visionlab train`` of ``overrides`` with :func:`fast`'s, then ``after`` (which win over them)."""
    from hydra import compose, initialize_config_dir

    from visionlab.cli.main import main

    first_job = job_overrides(shlex.join(["python", "train.py", *overrides]))[0]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=first_job, return_hydra_config=True)
    main(["train", *overrides, *fast(cfg), *after])


# Why a visionlab command of the docs is not run by test_every_visionlab_command_runs_on_a_run_of_its_kind.
COMMAND_SKIPS = {"board": "serves TensorBoard until stopped (tests/test_board.py starts it and stops it)",
                 "train": "a training command (test_every_training_command_runs_in_a_fast_mode)",
                 "lr-find": "a training command (test_every_training_command_runs_in_a_fast_mode)"}


def stand_in(command: str, runs: dict[str, str]) -> str:
    """``command`` with the docs' run folders and files replaced by this test's runs of the same kind:
    a GAN's for ``sample`` and ``cas`` (SRGAN's with ``--input``, inpainting's with ``--mask``), a
    sweep's for ``outputs/multirun/...``, else the classifier's (``RUN``, ``model.ckpt``, ``outputs/A``)."""
    words = shlex.split(command)
    kind = "classifier"
    if words[1] in ("sample", "cas"):
        kind = "inpaint" if "--mask" in words else "srgan" if "--input" in words else "gan"
    command = command.replace("outputs/multirun/2026-12-07/10-00-00", runs["multirun"])
    command = command.replace("outputs/2026-12-07/10-00-00", runs[kind])
    command = re.sub(r"outputs/A/checkpoints/\S+", runs["classifier_ckpt"], command)
    command = re.sub(r"outputs/B/checkpoints/\S+", runs["other_ckpt"], command)
    command = re.sub(r"\bRUN\b", runs["classifier"], command).replace("model.ckpt", runs["classifier_ckpt"])
    return re.sub(r"\s*\[[^]]*\]", "", command)  # [optional] parts left out


@pytest.mark.docs
def test_every_visionlab_command_runs_on_a_run_of_its_kind(in_project, capsys):
    """Each ``visionlab`` line of the docs runs to its end (exit 0) on runs this test makes in a fast
    mode: a classifier of the user's image folder, a two-job sweep, a conditional GAN, an SRGAN and an
    inpainting GAN; a command that downloads or serves until stopped is skipped, and the skips listed."""
    from visionlab.cli.main import load_commands, main

    load_commands()
    home = user_folders(in_project)
    folder = ["data=image_folder", f"data.root={home}/photos"]
    train_fast(*folder, "hydra.run.dir=outputs/classifier")
    train_fast("-m", "seed=1,2", *folder, "hydra.sweep.dir=outputs/sweep")
    gans = {"gan": "cgan_shapes_mono", "srgan": "srgan_shapes", "inpaint": "inpaint_shapes"}
    for kind, experiment in gans.items():  # cas --per-class 50 needs as many real images of each class
        train_fast(f"experiment={experiment}", f"hydra.run.dir=outputs/{kind}",
                   after=("data.train_per_class=50",))
    outputs = in_project / "outputs"
    runs = {kind: str(outputs / kind) for kind in ("classifier", *gans)}
    runs |= {"multirun": str(outputs / "sweep"),
             "classifier_ckpt": str(next((outputs / "classifier" / "checkpoints").glob("epoch_*"))),
             "other_ckpt": str(next((outputs / "sweep").rglob("epoch_*.ckpt")))}
    skipped, ran = [], 0
    for doc, command in dict.fromkeys(COMMANDS):
        words = shlex.split(command)
        reason = COMMAND_SKIPS.get(words[1]) if words[0] == "visionlab" else "not a visionlab command"
        if words[0] == "visionlab" and words[1] == "prefetch" and "cifar10" in command:
            reason = "downloads a dataset"
        if reason:
            skipped.append(f"{doc}: {command}: {reason}")
            continue
        run = stand_in(command.replace("/home/user/", f"{home}/"), runs)
        trailing = ["trainer.max_epochs=1", "data.num_workers=0"] if words[1] == "cas" else []
        before = set(in_project.rglob("*"))
        try:
            main([*shlex.split(run)[1:], *trailing])
        except SystemExit as exit_:
            if exit_.code:
                said = capsys.readouterr().err.strip().splitlines()[-1:]
                raise AssertionError(f"{doc}: {command} (run as {run}) exited {exit_.code}: {said}") from None
        ran += 1
        for path in sorted(set(in_project.rglob("*")) - before, reverse=True):  # the next line meets the runs
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()  # as they were made
    print("\n".join(["skipped:", *(s for s in skipped if "not a visionlab" not in s)]), file=sys.stderr)
    assert ran > 15, (ran, skipped)


@pytest.mark.docs
def test_every_training_command_runs_in_a_fast_mode(in_project, capsys):
    """Each ``python train.py`` / ``visionlab train|lr-find`` line of the docs runs to its end with
    :func:`fast` overrides, in a folder with the user's image folders (``~/...``) made of shapes; a
    line that needs a GPU, a cluster or a download is skipped, and the skips are listed."""
    from hydra import compose, initialize_config_dir

    from visionlab.cli.commands import COMMANDS as REGISTERED
    from visionlab.cli.main import load_commands, main

    load_commands()
    home = user_folders(in_project)
    lines = [(doc, command.replace("/home/user/", f"{home}/")) for doc, command in COMMANDS
             if command.startswith("python train.py") or (command.startswith("visionlab")
                                                        and REGISTERED[shlex.split(command)[1]].hydra)]
    skipped, ran = [], 0
    for doc, command in dict.fromkeys(lines):
        words = shlex.split(command)
        prefix = ["tune=lr_find"] if words[:2] == ["visionlab", "lr-find"] else []
        overrides = [*prefix, *words[2:]]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="train", overrides=job_overrides(" ".join(["python", "train.py",
                                                                                 *overrides]))[0],
                          return_hydra_config=True)
        reason = skip_reason(cfg)
        if reason:
            skipped.append(f"{doc}: {command}: {reason}")
            continue
        try:
            main(["train", *overrides, *fast(cfg)])
        except SystemExit as exit_:
            raise AssertionError(f"{doc}: {command} exited {exit_.code}") from None
        ran += 1
    print("\n".join(["skipped:", *skipped]), file=sys.stderr)
    assert ran > 30, (ran, skipped)
