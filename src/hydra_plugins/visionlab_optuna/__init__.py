"""visionlab's Hydra sweeper: an Optuna search on Optuna's ask/tell API (``hparams_search=optuna``).

Hydra finds plugins in the ``hydra_plugins`` namespace package, so the sweeper lives here rather
than under ``visionlab``.
"""
