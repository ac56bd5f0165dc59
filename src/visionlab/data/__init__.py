"""Data: LightningDataModules, transform presets and the embedded synthetic dataset."""
