"""visionlab: Hydra-configured PyTorch Lightning experiments for transfer learning and GANs."""

__version__ = "0.1.0"

from visionlab import resolvers  # noqa: E402,F401  (registers the configs' resolvers)
