"""Command-line overrides read as settings: each value parsed and written one way, and the
settings that cannot change a run's results (where it writes, what it logs to, what the console
shows) left out. What tells runs apart when they are compared, grouped and named (``visionlab
compare``, ``board``, a sweep's closing line, TensorBoard's HPARAMS)."""

from __future__ import annotations

# Settings that cannot change a run's results (where it writes, what it logs to, what the console
# shows): left out when runs are told apart, grouped and named.
NO_EFFECT = ("logger", "paths", "hydra", "ckpt_path", "callbacks.progress_bar", "callbacks.model_summary",
             "callbacks.augmented_batch", "callbacks.lr_monitor", "trainer.enable_progress_bar",
             "trainer.enable_model_summary", "trainer.log_every_n_steps")


def has_effect(key: str) -> bool:
    """Whether setting ``key`` can change a run's results (it is no :data:`NO_EFFECT` key or below one)."""
    return not any(key == prefix or key.startswith(prefix + ".") for prefix in NO_EFFECT)


def canonical(value) -> str:
    """A parsed override value written one way: ``1e-2`` and ``0.01`` both as ``0.01``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{canonical(v)}" for k, v in value.items()) + "}"
    return str(value)


def result_overrides(overrides: list[str]) -> list[str]:
    """``overrides`` as ``key=value`` with the value parsed and written one way (so ``optimizer.lr=1e-2``
    and a sweep's ``optimizer.lr=0.01`` are the same setting), ``+`` dropped, and the settings that
    cannot change results (:data:`NO_EFFECT`) left out. An override Hydra's grammar cannot read is
    kept as written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser, kept = OverridesParser.create(), []
    for line in overrides:
        try:
            (override,) = parser.parse_overrides([line])
        except HydraException:
            kept.append(line)
            continue
        key = override.key_or_group
        if not has_effect(key):
            continue
        kept.append(f"~{key}" if override.is_delete() else f"{key}={canonical(override.value())}")
    return kept
