"""The command-line entry points: exit codes and one-line errors, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from visionlab.cli.errors import exit_on_user_error
from visionlab.cli.main import main
from visionlab.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _train_in_process(*overrides: str) -> None:
    main(["train", *overrides])


def _train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VISIONLAB_DATA_DIR": str(cwd / "data"), "PROJECT_ROOT": str(cwd)}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_user_error_is_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "keep.txt").write_text("untouched")
    result = _train(f"ckpt_path={tmp_path / 'nope.ckpt'}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"error: ckpt_path={tmp_path / 'nope.ckpt'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "keep.txt").read_text() == "untouched"


SMALL = ["data.train_per_class=4", "data.val_per_class=2", "data.test_per_class=2",
         "data.cache_features=false"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backbone=timm", "backbone.name=resnet_nope"], "unknown timm backbone 'resnet_nope'; did you mean"),
        (["data=image_folder", "data.root={tmp}/missing"], "data directory {tmp}/missing does not exist"),
        (["backbone.weights={tmp}/missing.safetensors"], "{tmp}/missing.safetensors"),
        ([*SMALL, "optimizer.lr=-1"], "the optimizer rejects its settings: Invalid learning rate: -1"),
        ([*SMALL, "trainer.limit_val_batches=0.1"],
         "Lightning rejects the settings: You requested"),
    ],
    ids=["unknown-backbone", "missing-data-dir", "missing-weights", "negative-lr", "lightning-setting"],
)
def test_config_and_setting_errors_are_one_line_with_exit_2(in_project, capsys, overrides, message):
    with pytest.raises(SystemExit) as exit_info:
        _train_in_process(*(o.format(tmp=in_project) for o in overrides))
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message.format(tmp=in_project) in errors[0]
    assert "Traceback" not in stderr


def test_unknown_group_option_gets_hydras_message(tmp_path):
    result = _train("backbone=not_a_backbone", cwd=tmp_path)
    assert result.returncode != 0
    assert "not_a_backbone" in result.stderr and "Available options" in result.stderr


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "stages", "shapes"):
        assert command in out


def test_stages_lists_names_freeze_plans_accept(capsys):
    main(["stages", "shapes_net", "--granularity", "fine"])
    out = capsys.readouterr().out
    assert "7 fine stages" in out and "block4.conv1" in out


def test_shapes_writes_an_image_folder(tmp_path, capsys):
    main(["shapes", "shapes_target", "--out", str(tmp_path)])
    classes = sorted(p.name for p in (tmp_path / "shapes_target" / "train").iterdir())
    assert classes == ["arrow", "chevron", "crescent", "diamond", "heart", "tshape"]
    assert len(list((tmp_path / "shapes_target" / "train" / "heart").glob("*.png"))) == 30


def test_stages_resolves_presets_and_shows_keras_aliases(capsys):
    main(["stages", "vgg16"])
    out = capsys.readouterr().out
    assert out.startswith("vgg16 (timm): 5 coarse stages")
    assert "alias block5_conv1 -> features.24" in out


def test_visionlab_train_is_train_py_and_prints_each_line_once(in_project, capfd):
    _train_in_process("debug=fast", "callbacks.progress_bar=null", "data.train_per_class=4",
                      "data.val_per_class=2", "data.test_per_class=2")
    console = capfd.readouterr()
    assert (console.out + console.err).count("GPU available: False") == 1
    assert "litlogger" not in console.out + console.err
    (run_dir,) = (in_project / "outputs").glob("*/*")
    log_lines = (run_dir / "train.log").read_text().splitlines()
    assert "best checkpoint:" in log_lines[-2] and "results: test/acc=" in log_lines[-1]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def _raise_while_handling_a_user_error():
    try:
        raise UserError("the user's mistake")
    except UserError:
        raise RuntimeError("a bug in the handler") from None


def _raise_user_error_wrapped_by_hydra():
    from hydra.errors import InstantiationException

    try:
        raise UserError("the user's mistake")
    except UserError as err:
        raise InstantiationException("Error in call to target") from err


def test_a_bug_raised_while_handling_a_user_error_keeps_its_traceback():
    with pytest.raises(RuntimeError, match="a bug in the handler"), exit_on_user_error():
        _raise_while_handling_a_user_error()


def test_a_user_error_wrapped_by_hydra_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
        _raise_user_error_wrapped_by_hydra()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: the user's mistake\n"


def test_a_command_defined_outside_the_cli_package_is_parsed_checked_and_run(capsys):
    """``main`` knows no command by name: one registered here has its arguments, its check (before its
    run, with what it resolves handed on) and its help line, like the built-in ones."""
    import argparse

    from visionlab.cli.commands import COMMANDS, command

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--times", type=int, default=1)

    def check(args: argparse.Namespace) -> argparse.Namespace:
        if args.times < 1:
            raise UserError(f"--times {args.times} must be at least 1")
        return argparse.Namespace(**vars(args), greeting=f"hello {args.name}")

    @command("greet", "say hello", arguments, check)
    def greet(args: argparse.Namespace) -> None:
        print(" ".join([args.greeting] * args.times))

    try:
        main(["greet", "world", "--times", "2"])
        assert capsys.readouterr().out == "hello world hello world\n"
        with pytest.raises(SystemExit) as exit_info:
            main(["greet", "world", "--times", "0"])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == "error: --times 0 must be at least 1\n"
        with pytest.raises(SystemExit):
            main(["-h"])
        listing = capsys.readouterr().out
        assert "greet" in listing and "say hello" in listing
    finally:
        COMMANDS.discard("greet")
