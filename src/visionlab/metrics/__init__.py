"""Metrics: classification metrics cheap enough for every step."""
