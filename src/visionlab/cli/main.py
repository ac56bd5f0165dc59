"""The ``visionlab`` command: ``train``, ``lr-find``, ``prefetch``, ``compare``, ``eval``, ``predict``,
``export``, ``board``, ``stages``, ``shapes``, ``sample`` and ``cas`` subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visionlab.cli.checks import check_before_imports
from visionlab.cli.errors import EXIT_USER_ERROR, exit_on_user_error
from visionlab.data.tta import TTA_VIEWS
from visionlab.project import conf_dir_if_any, find_conf_dir


def cmd_train(overrides: list[str]) -> None:
    """Run a training job: the same Hydra task as ``python train.py <overrides>``."""
    from visionlab.cli.entry import hydra_train_main

    sys.argv = ["visionlab train", *overrides]
    hydra_train_main(str(find_conf_dir()))()


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one ``error:`` line (the command's name and the problem) and
    exit code 2, as every other mistake; ``-h`` still prints the full usage."""

    def error(self, message: str):
        """Print ``error: <prog>: <message>`` and exit 2."""
        print(f"error: {self.prog}: {message} (see {self.prog} -h)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per subcommand."""
    parser = OneLineParser(prog="visionlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    train = sub.add_parser("train", help="train a model (Hydra overrides and flags such as -m follow, "
                                         "as for train.py)")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="e.g. backbone=resnet18 optimizer.lr=1e-4")
    lr_find = sub.add_parser("lr-find", help="the learning-rate range test on the composed run: writes "
                                             "<run>/lr_find.png, prints the optimizer.lr to use (= train "
                                             "tune=lr_find)")
    lr_find.add_argument("overrides", nargs=argparse.REMAINDER,
                         help="the run's overrides, e.g. freeze=last_n")
    prefetch = sub.add_parser("prefetch", help="download what the run (-m: every job of the sweep) of these "
                                               "overrides loads from the network, into the caches it reads")
    prefetch.add_argument("-m", "--multirun", action="store_true", help="the overrides describe a sweep")
    prefetch.add_argument("overrides", nargs=argparse.REMAINDER,
                          help="the run's overrides, e.g. backbone=resnet18")
    compare = sub.add_parser("compare", help="rank the runs under sweep or run directories; write "
                                             "compare.md and compare.png")
    compare.add_argument("directories", nargs="+", type=Path, help="run, sweep or outputs directories")
    compare.add_argument("--metric", default=None, help="metric to rank and plot (default: the monitor)")
    compare.add_argument("--sort", default=None, help="rank by this metric instead of --metric")
    compare.add_argument("--top", type=int, default=None, help="only the N best runs")
    compare.add_argument("--out", type=Path, default=None, help="folder for compare.md/png (default: DIR)")
    compare.add_argument("--over", default=None,
                         help="average the runs that differ only in this key: mean ± std and n per group "
                              "(default: seed, when the runs vary it; none: every run on its own row)")
    evaluate = sub.add_parser("eval", help="test-set metrics, confusion matrix and top losses of classifier "
                                           "checkpoints (Hydra overrides of the run's config may follow)")
    evaluate.add_argument("targets", nargs="+", metavar="CKPT_OR_OVERRIDE",
                          help="one or more .ckpt files or run folders, then overrides (data.root=DIR)")
    evaluate.add_argument("--tta", default="none", choices=tuple(TTA_VIEWS),
                          help="also score the softmax averaged over views: flip (2), flip_crop (4)")
    evaluate.add_argument("--no-ema", action="store_true", help="the trained weights, not their EMA")
    pred = sub.add_parser("predict", help="predict the class of an image or of every image in a folder")
    pred.add_argument("checkpoint", type=Path, help="a classifier's checkpoint, or its run folder")
    pred.add_argument("input", type=Path, help="an image file or a folder (searched recursively)")
    pred.add_argument("--out", type=Path, default=None,
                      help="the CSV to write (default: <run>/predictions/<input name>.csv)")
    pred.add_argument("--force", action="store_true", help="replace the CSV if it exists")
    pred.add_argument("--top-k", type=int, default=None,
                      help="classes and probabilities per image (default: 3, or all of a model with fewer)")
    pred.add_argument("--batch-size", type=int, default=32)
    pred.add_argument("--tta", default="none", choices=tuple(TTA_VIEWS),
                      help="average the softmax over views of each image: flip (2), flip_crop (4)")
    pred.add_argument("--no-ema", action="store_true", help="the trained weights, not their EMA")
    exp = sub.add_parser("export", help="export a classifier to ONNX or TorchScript, checked against PyTorch")
    exp.add_argument("checkpoint", type=Path, help="a classifier's checkpoint, or its run folder")
    exp.add_argument("--format", default="onnx", choices=("onnx", "torchscript"))
    exp.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/export/<format>)")
    exp.add_argument("--force", action="store_true", help="replace an earlier export of this format in --out")
    exp.add_argument("--no-ema", action="store_true", help="the trained weights, not their EMA")
    exp.add_argument("--output", default="probabilities", choices=("probabilities", "logits"))
    board = sub.add_parser("board", help="TensorBoard over the runs under DIRs, each named by the overrides "
                                         "that set it apart")
    board.add_argument("directories", nargs="*", type=Path, default=[Path("outputs")],
                       help="run, sweep or outputs directories (default: outputs)")
    board.add_argument("--port", type=int, default=6006)
    board.add_argument("--host", default="localhost", help="0.0.0.0 to serve other machines")
    stages = sub.add_parser("stages", help="list a backbone's stages (names for freeze.from_layer)")
    stages.add_argument("name", help="a preset or model name, e.g. shapes_net, resnet18, vgg16")
    stages.add_argument("--source", default=None, help="timm | torchvision | custom (default: guess)")
    stages.add_argument("--granularity", default="coarse", choices=("coarse", "fine"))
    shapes = sub.add_parser("shapes", help="write a synthetic shapes dataset to a folder")
    shapes.add_argument("variant", choices=("shapes", "shapes_source", "shapes_target", "shapes_plain",
                                            "shapes_mono"))
    shapes.add_argument("--out", type=Path, default=Path("data/shapes"), help="parent folder")
    sample = sub.add_parser("sample", help="write images drawn from a GAN or LAPGAN checkpoint, or upscale "
                                           "(SRGAN) or inpaint a user's images")
    sample.add_argument("checkpoint", type=Path,
                        help="a model=gan|lapgan|srgan|inpaint run's checkpoint, or its run folder (its "
                             "best.ckpt by val/fid, else last.ckpt)")
    sample.add_argument("--n", type=int, default=64, help="number of images")
    sample.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/generated)")
    sample.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    sample.add_argument("--label", default=None, help="conditional GAN: the class to draw (name or index)")
    sample.add_argument("--per-class", type=int, default=None,
                        help="conditional GAN: write this many images per class as an ImageFolder tree")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--input", type=Path, default=None, dest="source",
                        help="srgan / inpaint: an image or a folder of images to upscale or inpaint")
    sample.add_argument("--mask", default=None, help="inpaint: center | random_boxes | free_form, the holes "
                                                     "to make (default: the model's model.mask)")
    cas = sub.add_parser("cas", help="Classification Accuracy Score of a conditional GAN: a classifier "
                                      "trained on its images vs one trained on as many real ones, both "
                                      "tested on real")
    cas.add_argument("checkpoint", type=Path, help="a conditional GAN's checkpoint, or its run folder")
    cas.add_argument("overrides", nargs="*", help="the classifier's overrides (default: the default job's)")
    cas.add_argument("--per-class", type=int, default=None,
                     help="images per class (default: as many as the smallest real class has)")
    cas.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/cas)")
    cas.add_argument("--force", action="store_true", help="replace an earlier CAS in --out")
    cas.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``visionlab`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["train"], ["lr-find"]):  # Hydra parses the rest: argparse would reject -m, --cfg
        with exit_on_user_error():
            cmd_train(argv[1:] if argv[0] == "train" else ["tune=lr_find", *argv[1:]])
        return
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "cas" and all("=" in a and not a.startswith("-") for a in unknown):
        args.overrides += unknown  # overrides may follow the options too
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    with exit_on_user_error():
        check_before_imports(args)
        if args.command == "prefetch":
            from visionlab.prefetch import prefetch

            flags = ("-m", "--multirun")
            failed = prefetch(find_conf_dir(), [o for o in args.overrides if o not in flags],
                              args.multirun or any(o in flags for o in args.overrides))
            if failed:
                print(f"error: visionlab prefetch: {failed} job(s) did not compose (above); the others' "
                      "files are fetched", file=sys.stderr)
                sys.exit(EXIT_USER_ERROR)
        elif args.command == "compare":
            from visionlab.cli.compare import cmd_compare

            cmd_compare(args.directories, args.metric, args.sort, args.top, args.out, args.over)
        elif args.command == "eval":
            from visionlab.cli.evaluate import cmd_eval

            cmd_eval(args.checkpoints, args.overrides, conf_dir_if_any(), args.tta, averaged=not args.no_ema)
        elif args.command == "predict":
            from visionlab.cli.predict import cmd_predict

            cmd_predict(args.checkpoint, args.images, args.skipped, args.out, args.top_k, args.batch_size,
                        conf_dir_if_any(), args.tta, averaged=not args.no_ema)
        elif args.command == "export":
            from visionlab.cli.export import cmd_export

            cmd_export(args.checkpoint, args.format, args.out, args.output, conf_dir_if_any(),
                       averaged=not args.no_ema, force=args.force)
        elif args.command == "board":
            from visionlab.cli.board import cmd_board

            cmd_board(args.directories, args.port, args.host)
        elif args.command == "stages":
            from visionlab.cli.stages import cmd_stages

            cmd_stages(args.name, args.source, args.granularity)
        elif args.command == "shapes":
            from visionlab.cli.shapes import cmd_shapes

            cmd_shapes(args.variant, args.out)
        elif args.command == "sample":
            from visionlab.cli.sample import cmd_sample

            cmd_sample(args.checkpoint, args.n, args.out, args.label, args.per_class, args.seed, args.source,
                       args.mask)
        elif args.command == "cas":
            from visionlab.cli.cas import cmd_cas

            cmd_cas(args.checkpoint, find_conf_dir(), args.out, args.per_class, args.overrides, args.seed)


if __name__ == "__main__":
    main()
