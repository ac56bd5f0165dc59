"""visionlab: Hydra-configured PyTorch Lightning experiments for transfer learning and GANs.

In Python: ``visionlab.load(checkpoint_or_run_folder)`` gives the trained module (``predict``,
``draw`` or ``restore`` on it), ``visionlab.evaluate`` and ``visionlab.export`` what the CLI's
``eval`` and ``export`` do (:mod:`visionlab.api`). They load torch when first used, so that the
command line's quick checks stay quick.
"""

__version__ = "0.1.0"

from visionlab import resolvers  # noqa: E402,F401  (registers the configs' resolvers)

API = ("load", "evaluate", "export")


def __getattr__(name: str):
    """``visionlab.load`` / ``evaluate`` / ``export``, imported on first use."""
    if name in API:
        from visionlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'visionlab' has no attribute {name!r}")
