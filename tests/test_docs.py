"""The docs cannot silently rot: every relative link and image in README.md and docs/ resolves (the
file, and the heading an anchor names), and every ``python train.py`` and ``visionlab`` command in
their bash blocks (collected with mktestdocs) is one the project accepts: a training command's
overrides compose with ``conf/`` (Hydra's own checks: an unknown group option, key or value type is
refused), and a ``visionlab`` command parses with the commands' own parser. Placeholders (``<date>``,
``~/photos``, ``model.ckpt``) are filled with stand-ins of the right shape.
"""

from __future__ import annotations

import re
import shlex
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
