"""Benchmark: the course's learning-outcomes table on the embedded shapes_target transfer task.

    python bench/outcomes.py                   # 20 recipes x 3 seeds, about 55 minutes on 2 cores
    python bench/outcomes.py --seeds 1 --rows 1 3

shapes_target has 6 shape classes with 30 training images each; ``shapes_net`` was
pretrained on 8 other shape classes (shapes_source). Every recipe runs the real default
config (15 epochs at most, early stopping on val/loss with patience 3, best checkpoint
tested) with the overrides listed, in this process, once per seed; the table gives the mean
and standard deviation of the test accuracy and of the wall time per run. A recipe with a
test-time augmentation reports its best checkpoint's accuracy with the softmax averaged over
those views (``visionlab eval --tta``), its wall time including that evaluation.

The course's ordering is (1) < (2) < (3..4) < (5..6): from scratch, scratch with augmentation
and dropout, feature extraction, fine-tuning. See the README for the measured table and what
it shows.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, load_average, print_table
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from visionlab.inference.evaluate import evaluate
from visionlab.modules.classifier import ClassifierModule
from visionlab.train import run

CONF_DIR = ROOT / "conf"
SCRATCH = ["backbone=chollet_cnn", "backbone.input_size=64", "freeze=none"]
LAST_TWO = ["freeze=staged", "freeze.milestones={0:head,5:2}", "freeze.lr_factors={5:0.1}"]
EMA_MIXUP = ["model.ema_decay=0.99", "mixup=mixup"]
# MixUp's blends make the training task harder: give it the epochs its papers give it.
LONG = ["trainer.max_epochs=40", "callbacks.early_stopping=null"]
# Replaced by the optimizer.lr that `tune=lr_find` suggests for the same overrides and seed.
SUGGESTED_LR = "optimizer.lr=<lr-find>"
# number: (label, overrides, test-time augmentation)
RECIPES = {
    1: ("chollet_cnn from scratch", SCRATCH, "none"),
    2: ("+ Keras augmentation + dropout 0.5", [*SCRATCH, "augment=keras", "model.head.dropout=0.5"], "none"),
    3: ("feature extraction from shapes_net (cached)", [], "none"),
    4: ("feature extraction + Keras augmentation", ["augment=keras"], "none"),
    5: ("head 5 epochs, then the last 2 stages at 0.1x LR", LAST_TWO, "none"),
    6: ("staged unfreezing {0:head,3:2,6:all}", ["freeze=staged"], "none"),
    7: ("freeze=auto (similar data)", ["freeze=auto", "freeze.similar=true"], "none"),
    8: ("(5) + weight EMA 0.99", [*LAST_TWO, "model.ema_decay=0.99"], "none"),
    9: ("(6) + weight EMA 0.99", ["freeze=staged", "model.ema_decay=0.99"], "none"),
    10: ("(3) + MixUp 0.2 (end to end)", ["mixup=mixup"], "none"),
    11: ("(3) + CutMix 1.0 (end to end)", ["mixup=cutmix"], "none"),
    12: ("two_phase: head 5 epochs, then all at 0.1x LR", ["freeze=two_phase"], "none"),
    13: ("(12) + weight EMA 0.99 + MixUp 0.2", ["freeze=two_phase", *EMA_MIXUP], "none"),
    14: ("(6) + weight EMA 0.99 + MixUp 0.2", ["freeze=staged", *EMA_MIXUP], "none"),
    15: ("(3) tested with --tta flip", [], "flip"),
    16: ("(3) tested with --tta flip_crop", [], "flip_crop"),
    17: ("(3) at lr-find's suggested optimizer.lr", [SUGGESTED_LR], "none"),
    18: ("(6) at lr-find's suggested optimizer.lr", ["freeze=staged", SUGGESTED_LR], "none"),
    19: ("(3) for 40 epochs, no early stopping", LONG, "none"),
    20: ("(10) for 40 epochs, no early stopping", [*LONG, "mixup=mixup"], "none"),
}
QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "trainer.enable_progress_bar=false",
         "logger=csv"]


def tta_accuracy(cfg: DictConfig, tta: str) -> float:
    """Test accuracy of the run's best checkpoint with its softmax averaged over the ``tta`` views."""
    best = next((Path(cfg.paths.output_dir) / "checkpoints").glob("epoch_*.ckpt"))  # save_top_k: 1
    model = ClassifierModule.from_checkpoint(torch.load(best, weights_only=True), best, lambda: cfg)
    model.adopt_weights(averaged=True)
    data = instantiate(cfg.data, data_config=model.backbone.data_config, augment=None)
    data.prepare_data()
    data.setup("test")
    return evaluate(model, data.test_dataloader(), list(data.class_names), tta=tta).accuracy


def composed(overrides: list[str], seed: int, data_dir: str, out_dir: str) -> DictConfig:
    """The default config with ``overrides`` and ``seed``, writing to ``out_dir``."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*QUIET, *overrides, f"seed={seed}"])
    with open_dict(cfg):
        cfg.paths.output_dir = out_dir
        cfg.paths.data_dir = data_dir
    return cfg


def suggested_lr(overrides: list[str], seed: int, data_dir: str, out_dir: str) -> str:
    """The ``optimizer.lr=...`` override that ``tune=lr_find`` suggests for ``overrides``."""
    cfg = composed([o for o in overrides if o != SUGGESTED_LR] + ["tune=lr_find"], seed, data_dir, out_dir)
    run(cfg)
    return f"optimizer.lr={json.loads((Path(out_dir) / 'lr_find.json').read_text())['suggestion']:.3g}"


def one_run(overrides: list[str], tta: str, seed: int, data_dir: str, out_dir: str) -> tuple[float, float]:
    """Test accuracy (with test-time augmentation ``tta``) and wall time (the range test included) of
    the default config with ``overrides`` and ``seed``."""
    start = time.perf_counter()
    if SUGGESTED_LR in overrides:
        lr = suggested_lr(overrides, seed, data_dir, f"{out_dir}-lr_find")
        print(f"lr-find suggests {lr}", flush=True)
        overrides = [lr if o == SUGGESTED_LR else o for o in overrides]
    cfg = composed(overrides, seed, data_dir, out_dir)
    accuracy = run(cfg)
    if tta != "none":
        accuracy = tta_accuracy(cfg, tta)
    return accuracy, time.perf_counter() - start


def main() -> None:
    """Run the chosen recipes for every seed and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(RECIPES),
                        help=f"recipe numbers 1-{len(RECIPES)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="where shapes_target is generated")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for number in args.rows:
            label, overrides, tta = RECIPES[number]
            results = [one_run(overrides, tta, seed, args.data_dir, f"{out}/{number}-{seed}")
                       for seed in range(1, args.seeds + 1)]
            accuracies, seconds = zip(*results, strict=True)
            spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            rows.append([f"({number}) {label}", f"{statistics.mean(accuracies):.3f} ± {spread:.3f}",
                         f"{statistics.mean(seconds):.1f}"])
            print(f"({number}) accuracies {[round(a, 3) for a in accuracies]}", flush=True)
    print_table(f"shapes_target test accuracy, {args.seeds} seeds, {load_average()}",
                ["recipe", "test acc (mean ± std)", "s per run"], rows)
    best = max(rows, key=lambda r: float(r[1].split()[0]))
    print(f"summary: best recipe {best[0]} at {best[1]} test accuracy")


if __name__ == "__main__":
    main()
