"""LightningModules: the classifier (and the schedulers their optimizers use)."""
