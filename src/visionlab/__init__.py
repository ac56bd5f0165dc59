"""visionlab: Hydra-configured PyTorch Lightning experiments for transfer learning and GANs."""

__version__ = "0.1.0"
