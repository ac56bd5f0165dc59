"""Networks, the lowest layer: backbones from every source, heads, weight files.

Nothing here imports a LightningModule, a freeze plan or a DataModule; the only shared
knowledge with ``data/`` is :mod:`visionlab.data_config` (what a network expects as input).
"""
