"""The one interface every feature extractor (timm, torchvision, custom) is wrapped in.

A :class:`Backbone` answers the questions the rest of visionlab asks of a network:
what features it returns, how wide they are, which named stages it is made of
(input side first, the unit freeze plans work with) and what input it expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from visionlab.data_config import DataConfig
from visionlab.errors import UserError, closest, first_line
from visionlab.nets.probe import PROBE_ERRORS, eval_mode


@dataclass(frozen=True)
class Stage:
    """A named, ordered group of the backbone's submodules that is frozen or trained as one.

    ``modules`` are qualified submodule names relative to ``Backbone.body``, or the
    qualified name of a single parameter for parameters held directly by a module whose
    other parameters belong elsewhere (a ViT's ``cls_token`` and ``pos_embed`` sit on the
    model root). :func:`stage_entry_parameters` resolves either kind.
    """

    name: str
    modules: tuple[str, ...]


class Backbone(nn.Module):
    """A feature network with a uniform interface, whatever library it comes from.

    ``forward_features(x)`` returns the last feature map ``(N, C, H, W)`` (or tokens
    ``(N, L, C)`` for transformers); ``forward(x)`` returns pooled features
    ``(N, num_features)``. ``stages(granularity)`` lists the named stages, input side
    first: ``coarse`` is the model's natural blocks (``layer3``, ``block5``), ``fine`` its
    individual layers or residual blocks. Every parameter of ``body`` belongs to exactly
    one stage of each granularity.

    ``head_prefixes`` names the source model's modules that are not part of ``body`` (its
    classifier, pre-logits layers, auxiliary heads): weight files of the full model carry
    their keys, and :func:`visionlab.nets.weights.load_backbone_weights` sets them aside
    as the old head instead of rejecting them. Builders assign it after construction.

    The body ends where the class-specific part of the source model starts (Keras'
    ``include_top=False``): dense layers trained for the source's classes belong to the
    head. ``default_head`` is the head a network's recipe uses when ``model.head`` leaves a
    field null (``chollet_cnn``: Flatten -> Dense 512, the course's architecture).
    """

    head_prefixes: tuple[str, ...] = ()
    default_head: dict = {}
    # The backbone group entry that builds this architecture without weights (set by
    # visionlab.nets.factory.build_backbone; None for a network built by hand): checkpoints keep it.
    recipe: dict | None = None
    # The source model's own global pooling of forward_features (timm's forward_head with
    # pre_logits: the class token for ViTs), or None for an average over space or tokens.
    global_pool_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None

    def __init__(
        self,
        body: nn.Module,
        *,
        name: str,
        source: str,
        num_features: int,
        data_config: DataConfig,
        coarse_stages: list[Stage],
        fine_stages: list[Stage],
        features_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        layer_aliases: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.name = name
        self.source = source
        self.num_features = num_features
        self.data_config = data_config
        self._stages = {"coarse": list(coarse_stages), "fine": list(fine_stages)}
        self._features_fn = features_fn
        self.layer_aliases = dict(layer_aliases or {})
        self.frozen_norm_modules: set[str] = set()
        self.truncated_after: str | None = None  # the stage truncate() cut after, if it did
        for granularity, stages in self._stages.items():
            _check_stage_cover(body, stages, f"{name} ({granularity})")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled features: ``(N, C, H, W)`` for CNNs, ``(N, L, C)`` for transformers."""
        if self._features_fn is not None:
            return self._features_fn(self.body, x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, num_features)``: the model's own global pooling."""
        return self.pool(self.forward_features(x), "avg")

    def pool(self, features: torch.Tensor, kind: str) -> torch.Tensor:
        """``(N, D)`` from ``forward_features``' output: ``avg`` is the source model's own global
        pooling where it has one (``global_pool_fn``), else :func:`pool_features`. Vectors
        ``(N, D)`` (features pooled already, as the feature cache serves them) pass through."""
        if kind == "avg" and self.global_pool_fn is not None and features.ndim != 2:
            return self.global_pool_fn(self.body, features)
        return pool_features(features, kind)

    def stages(self, granularity: str = "coarse") -> list[Stage]:
        """The ordered stages (input side first) at ``coarse`` or ``fine`` granularity."""
        if granularity not in self._stages:
            raise UserError(
                f"stage granularity '{granularity}' is not one of: {', '.join(self._stages)}"
            )
        return list(self._stages[granularity])

    def stage_parameters(self, stage: Stage) -> list[nn.Parameter]:
        """The parameters that belong to ``stage`` (no duplicates)."""
        seen: dict[int, nn.Parameter] = {}
        for entry in stage.modules:
            for p in stage_entry_parameters(self.body, entry):
                seen.setdefault(id(p), p)
        return list(seen.values())

    def train(self, mode: bool = True) -> Backbone:
        """Switch train/eval mode, keeping the normalisation layers of frozen stages in eval.

        Lightning calls ``train()`` after every validation loop; without this override the
        BatchNorm running statistics of frozen stages would drift.
        """
        super().train(mode)
        for module_name in self.frozen_norm_modules:
            self.body.get_submodule(module_name).eval()
        return self

    def truncate(self, after_stage: str) -> Backbone:
        """Keep the backbone only up to stage ``after_stage`` (either granularity); in place.

        Early layers hold generic features (edges, textures) that transfer to data far from
        the pretraining domain better than the late, task-specific ones. Every module of the
        later stages is replaced by ``nn.Identity``, so their parameters leave the model;
        the stage lists shrink and ``num_features`` is measured with one dummy forward.
        This works for bodies that pass each stage's output on to the next (the custom,
        torchvision and timm CNNs and ViTs); a body that cannot run without its later
        stages, or an unknown stage name, is a UserError.
        """
        names = {g: [s.name for s in stages] for g, stages in self._stages.items()}
        granularity = next((g for g, n in names.items() if after_stage in n), None)
        if granularity is None:
            known = list(dict.fromkeys(names["coarse"] + names["fine"]))
            near = closest(after_stage, known) or known
            raise UserError(f"freeze.truncate_after='{after_stage}' is not a stage of {self.name}; "
                            f"nearest: {', '.join(near)}")
        stages = self._stages[granularity]
        for stage in stages[names[granularity].index(after_stage) + 1:]:
            for entry in stage.modules:
                try:
                    self.body.get_submodule(entry)
                except AttributeError:
                    raise UserError(f"{self.name} cannot be truncated after '{after_stage}': stage "
                                    f"'{stage.name}' holds the bare parameter '{entry}'") from None
                self.body.set_submodule(entry, nn.Identity())
        self._stages = {g: _surviving_stages(self.body, s) for g, s in self._stages.items()}
        self.truncated_after = after_stage
        self.frozen_norm_modules = set()
        self.num_features = self._measure_num_features(after_stage)
        return self

    def _measure_num_features(self, after_stage: str) -> int:
        """Width of the pooled features, found with one forward pass of a blank image."""
        try:
            features = self.forward_example(pooled=True)
        except PROBE_ERRORS as err:
            raise UserError(f"{self.name} cannot run truncated after '{after_stage}' ({first_line(err)}); "
                            "choose another freeze.truncate_after or remove it") from None
        return int(features.shape[-1])

    def forward_example(self, pooled: bool = False) -> torch.Tensor:
        """Features of one blank input of the expected size, computed in eval mode without grad.

        Used to measure widths: pooled ``(1, num_features)`` or the unpooled map.
        """
        dc = self.data_config
        example = torch.zeros(1, dc.in_chans, dc.input_size, dc.input_size)
        with eval_mode(self), torch.no_grad():
            return self(example) if pooled else self.forward_features(example)


def pool_features(features: torch.Tensor, kind: str) -> torch.Tensor:
    """Pool ``(N, C, H, W)`` maps or ``(N, L, C)`` tokens to ``(N, D)``.

    ``avg``/``max`` reduce over space (or tokens); ``flatten`` keeps everything. Features
    that are already vectors ``(N, D)`` (a backbone ending in a dense layer) pass through.
    """
    if features.ndim == 2:
        return features
    if kind == "flatten":
        return features.flatten(1)
    dims = (2, 3) if features.ndim == 4 else (1,)
    if kind == "avg":
        return features.mean(dim=dims)
    if kind == "max":
        return features.amax(dim=dims)
    raise UserError(f"model.head.pool='{kind}' is not one of: avg, max, flatten")


def stage_entry_parameters(body: nn.Module, entry: str) -> list[nn.Parameter]:
    """The parameters a ``Stage.modules`` entry names: all of a submodule's, or one parameter."""
    try:
        return list(body.get_submodule(entry).parameters())
    except AttributeError:
        return [body.get_parameter(entry)]


def _surviving_stages(body: nn.Module, stages: list[Stage]) -> list[Stage]:
    """``stages`` without the entries (and then stages) that truncation left without weights."""
    kept = []
    for stage in stages:
        entries = []
        for entry in stage.modules:
            try:
                if stage_entry_parameters(body, entry):
                    entries.append(entry)
            except AttributeError:  # inside a module that was replaced
                continue
        if entries:
            kept.append(Stage(stage.name, tuple(entries)))
    return kept


def _check_stage_cover(body: nn.Module, stages: list[Stage], what: str) -> None:
    """Fail loudly (a programming error, not a user one) if stages miss or repeat parameters."""
    owned: dict[int, str] = {}
    for stage in stages:
        for entry in stage.modules:
            for p in stage_entry_parameters(body, entry):
                if id(p) in owned and owned[id(p)] != stage.name:
                    raise ValueError(f"{what}: a parameter is in stages {owned[id(p)]} and {stage.name}")
                owned[id(p)] = stage.name
    missing = [n for n, p in body.named_parameters() if id(p) not in owned]
    if missing:
        raise ValueError(f"{what}: parameters in no stage: {missing[:5]}")
