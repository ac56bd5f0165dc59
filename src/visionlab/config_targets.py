"""Every ``_target_`` of a composed config checked against what it accepts, before anything is built.

Hydra passes a node's keys to its target as keyword arguments, so a key the target does not take
(``+optimizer.learning_rate=1e-3``, the override Hydra itself suggests for an unknown key) used to
surface as a 50-line ``TypeError`` from deep inside Lightning, seconds into the run. Checked here,
it is one line naming the key and the arguments the target takes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from omegaconf import DictConfig, ListConfig

from visionlab.errors import UserError, closest


def target_nodes(node, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """``(dotted path, node)`` for every node under ``node`` that has a ``_target_``."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node.keys():
            if isinstance(key, str) and not key.startswith("_"):
                child = node._get_node(key)
                if isinstance(child, DictConfig | ListConfig):
                    yield from target_nodes(child, f"{path}.{key}" if path else key)
    elif isinstance(node, ListConfig):
        for index, child in enumerate(node):
            yield from target_nodes(child, f"{path}[{index}]")


def accepted_arguments(target) -> list[str] | None:
    """The keyword arguments ``target`` takes, or None when it takes any or has no signature Python
    can read. A class whose ``__init__`` passes ``**kwargs`` on to its base's also takes the base's
    arguments (followed up the MRO until an ``__init__`` without ``**kwargs``); positional-only
    parameters are internal and not counted."""
    inits = ([klass.__dict__["__init__"] for klass in target.__mro__ if "__init__" in klass.__dict__]
             if isinstance(target, type) else [target])
    names: list[str] = []
    for init in inits:
        try:
            parameters = list(inspect.signature(init).parameters.values())
        except (TypeError, ValueError):
            return None
        names += [p.name for p in parameters if p.name != "self" and p.name not in names and p.kind in
                  (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return names
    return None


def check_config_targets(cfg: DictConfig) -> None:
    """Raise a UserError for the first config key its ``_target_`` does not accept, or a target
    that cannot be imported."""
    from hydra._internal.utils import _locate

    for path, node in target_nodes(cfg):
        name = node._get_node("_target_")._value()
        try:
            target = _locate(name)
        except ImportError as err:
            raise UserError(f"{path}._target_={name} cannot be imported ({str(err).splitlines()[0]}): "
                            "give a class or function as package.module.Name") from None
        accepted = accepted_arguments(target)
        if accepted is None:
            continue
        for key in node.keys():
            if isinstance(key, str) and not key.startswith("_") and key not in accepted:
                hint = closest(key, accepted, n=1)
                guess = f" (did you mean {path}.{hint[0]}?)" if hint else ""
                raise UserError(f"{path}.{key}: {name} takes no argument '{key}'{guess}; "
                                f"it takes: {', '.join(a for a in accepted if a != 'self')}")
