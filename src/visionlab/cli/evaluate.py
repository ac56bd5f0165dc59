"""``visionlab eval CKPT [CKPT ...] [overrides]``: test-set metrics of trained classifiers.

For each checkpoint: accuracy, macro-F1 and a per-class table on stdout; ``eval.json``,
``confusion_matrix.png`` and ``top_losses.png`` in ``<run>/eval/<checkpoint>[-<overrides>]/`` (a
checkpoint copied out of its run: ``eval/`` beside it); the confusion matrix also in the run's
TensorBoard (*Images*, ``eval/confusion_matrix``) when it has one.
With two or more checkpoints, their metrics side by side (feature extraction vs fine-tuning).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from visionlab.checkpoint_header import output_root, require
from visionlab.cli.checks import chosen_checkpoint
from visionlab.cli.commands import command
from visionlab.data.tta import TTA_VIEWS
from visionlab.errors import UserError
from visionlab.image_files import is_readable_image, named_as_image
from visionlab.project import conf_dir_if_any

if TYPE_CHECKING:
    from visionlab.inference.evaluate import Evaluation

TOP_LOSSES = 16


def output_dir(run_dir: Path, checkpoint: Path, overrides: list[str]) -> Path:
    """``<run>/eval/<checkpoint stem>``, suffixed with the overrides when there are any."""
    suffix = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", ",".join(overrides))[:80]
    return run_dir / "eval" / (checkpoint.stem + (f"-{suffix}" if suffix else ""))


def print_per_class(evaluation: Evaluation) -> None:
    """The per-class precision / recall / F1 / support table."""
    width = max(8, *(len(name) for name in evaluation.class_names))
    print(f"  {'class':<{width}}  precision  recall     f1  support")
    for row in evaluation.per_class:
        print(f"  {row['class']:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  "
              f"{row['support']:7d}")


def write_outputs(evaluation: Evaluation, dataset, data_config, run_dir: Path, out: Path,
                  title: str) -> set[str]:
    """``eval.json``, the confusion-matrix figure (also to TensorBoard) and the top-losses grid; the
    characters of the class names no installed font draws in the figure."""
    import matplotlib.pyplot as plt

    from visionlab.inference.figures import any_script_labels, confusion_figure, top_losses_grid

    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(evaluation.as_dict(), indent=2))
    with any_script_labels() as missing:
        figure = confusion_figure(evaluation.confusion, evaluation.class_names, title)
        figure.savefig(out / "confusion_matrix.png", dpi=100)
        tensorboard = run_dir / "tensorboard"
        if tensorboard.is_dir():
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(tensorboard / "eval")) as writer:
                writer.add_figure("eval/confusion_matrix", figure, 0, close=False)
    plt.close(figure)
    wrong = evaluation.most_confidently_wrong(TOP_LOSSES)
    if wrong:
        top_losses_grid(dataset, wrong, evaluation, data_config).save(out / "top_losses.png")
    return missing


def cmd_eval(checkpoints: list[Path], overrides: list[str], conf_dir: Path | None = None, tta: str = "none",
             averaged: bool = True) -> list[Evaluation]:
    """Evaluate every checkpoint on its run's test set (``overrides`` applied) with
    :func:`visionlab.evaluate`; print, write, return. With ``tta``, also the softmax averaged over
    its views, printed and written beside the plain score (the figures stay the plain model's).
    ``conf_dir`` is needed only for overrides that pick a group option (``data=image_folder``) and
    for checkpoints written before they held their run's config."""
    from visionlab.api import evaluate
    from visionlab.inference.checkpoint import evaluation_data, load

    results = []
    for checkpoint in checkpoints:
        model = load(checkpoint, averaged=averaged, conf_dir=conf_dir)
        data = evaluation_data(model, overrides, conf_dir)
        evaluation = evaluate(model, description=f"evaluating {checkpoint.name}", data=data)
        run_dir = output_root(checkpoint)
        out = output_dir(run_dir, checkpoint, overrides)
        unfontable = write_outputs(evaluation, data.test_set if data.test_set is not None else data.val_set,
                                   model.input_config, run_dir, out, f"{run_dir.name}/{checkpoint.name}")
        print(f"{checkpoint}: accuracy {evaluation.accuracy:.4f}, macro-F1 {evaluation.macro_f1:.4f}, "
              f"loss {evaluation.loss:.4f} on {int(evaluation.confusion.sum())} test images")
        print_per_class(evaluation)
        if tta != "none":
            augmented = evaluate(model, tta=tta, description=f"evaluating {checkpoint.name} with --tta {tta}",
                                 data=data)
            gain = augmented.accuracy - evaluation.accuracy
            print(f"  with --tta {tta}: accuracy {augmented.accuracy:.4f} ({gain:+.4f}), macro-F1 "
                  f"{augmented.macro_f1:.4f}, loss {augmented.loss:.4f}")
            report = json.loads((out / "eval.json").read_text())
            report["tta"] = {"views": tta, "accuracy": augmented.accuracy, "macro_f1": augmented.macro_f1,
                             "loss": augmented.loss}
            (out / "eval.json").write_text(json.dumps(report, indent=2))
        if unfontable:
            print(f"  confusion_matrix.png: no installed font draws {' '.join(sorted(unfontable))} of the "
                  "class names, shown as boxes (a font with them, e.g. Noto Sans CJK, draws them)")
        print(f"  written to {out}")
        results.append(evaluation)
    if len(results) > 1:
        print("\n  accuracy  macro-F1    loss  checkpoint")
        for checkpoint, evaluation in zip(checkpoints, results, strict=True):
            print(f"  {evaluation.accuracy:8.4f}  {evaluation.macro_f1:8.4f}  {evaluation.loss:6.4f}  "
                  f"{checkpoint}")
    return results


def eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoints (or run folders), then overrides; TTA; the trained weights instead of their EMA."""
    parser.add_argument("targets", nargs="+", metavar="CKPT_OR_OVERRIDE",
                        help="one or more .ckpt files or run folders, then overrides (data.root=DIR)")
    parser.add_argument("--tta", default="none", choices=tuple(TTA_VIEWS),
                        help="also score the softmax averaged over views: flip (2), flip_crop (4)")
    parser.add_argument("--no-ema", action="store_true", help="the trained weights, not their EMA")


def refuse_a_folder_of_images(target: Path) -> None:
    """A UserError naming the overrides that evaluate on ``target`` when it is a folder of images
    given where a checkpoint goes (``visionlab eval model.ckpt photos/``)."""
    if not target.is_dir() or (target / "checkpoints").is_dir():
        return
    found = (p for p in target.rglob("*") if p.is_file() and not p.name.startswith("."))
    first = itertools.islice(found, 20)  # a look at the first files: a dataset may be large
    files = [p for p in first if named_as_image(p)]  # a README or Thumbs.db beside them is no image
    if files and all(is_readable_image(p) for p in files):
        raise UserError(f"{target} is a folder of images, not a run: to evaluate on it, give after the "
                        f"checkpoint data=image_folder data.root={target} (images in <class>/ folders, or "
                        "in train/ val/ test/ with <class>/ folders in each)")


def check_eval(args: argparse.Namespace) -> argparse.Namespace:
    """Every checkpoint (a run folder: its checkpoint) before the overrides classifies."""
    given = [Path(t) for t in args.targets if "=" not in t]
    for target in given:
        refuse_a_folder_of_images(target)
    checkpoints = [chosen_checkpoint(target) for target in given]
    if not checkpoints:
        raise UserError("eval needs at least one checkpoint (.ckpt) before the overrides")
    for checkpoint in checkpoints:
        require(checkpoint, ("classify",), "eval")
    return argparse.Namespace(**vars(args), checkpoints=checkpoints,
                              overrides=[t for t in args.targets if "=" in t])


@command("eval", "test-set metrics, confusion matrix and top losses of classifier checkpoints (Hydra "
                 "overrides of the run's config may follow)", eval_arguments, check_eval)
def run_eval(args: argparse.Namespace) -> None:
    """:func:`cmd_eval` on the checked arguments."""
    cmd_eval(args.checkpoints, args.overrides, conf_dir_if_any(), args.tta, averaged=not args.no_ema)
