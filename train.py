"""Train a model from the Hydra config in conf/ (see README.md).

    python train.py                                   # fine-tune shapes_net on shapes_target
    python train.py backbone=resnet18 freeze=feature_extraction optimizer.lr=1e-4
    python train.py -m optimizer.lr=1e-3,1e-4          # a sweep

Heavy imports (torch, lightning) happen inside main(), so `--help` and `--cfg job` are fast.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Run one training job and return the metric a sweeper optimises."""
    from visionlab.cli.errors import exit_on_user_error
    from visionlab.train import run

    with exit_on_user_error():
        return run(cfg)


if __name__ == "__main__":
    main()
