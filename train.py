"""Train a model from the Hydra config in conf/ (see README.md).

    python train.py                                   # fine-tune shapes_net on shapes_target
    python train.py backbone=resnet18 freeze=feature_extraction optimizer.lr=1e-4
    python train.py -m optimizer.lr=1e-3,1e-4          # a sweep

The task is visionlab.cli.entry.train_task (the same as `visionlab train`); heavy imports
happen inside it, so `--help` and `--cfg job` are fast.
"""

from pathlib import Path

from visionlab.cli.entry import hydra_train_main

main = hydra_train_main(str(Path(__file__).resolve().parent / "conf"))

if __name__ == "__main__":
    main()
