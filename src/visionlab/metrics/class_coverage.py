"""Which classes a generator draws: class coverage, the rarest class's share, and (conditional
models) whether it draws the class it was asked for.

FID cannot tell a blurry generator from one that drops half the classes (see the README's
anchors); a classifier of the real data can. By default :class:`LinearProbe` is that classifier:
a softmax regression on the FID feature network's features of the real training images, fitted
in a second at the start of a run (shapes_net's features separate the shapes linearly: the probe
scores 0.9+ on the validation split of the embedded variants; the run logs its accuracy, so a
feature space that does not know the data shows as a weak probe). :class:`ClassifierJudge` is
the alternative a user brings: a trained visionlab classifier (``model.eval_classifier``).
:class:`ClassCoverage` accumulates the predictions for generated images over an evaluation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.nets.backbone_input import BackboneInput

# A generated image counts as recognised when the probe gives its class at least this probability.
RECOGNISED = 0.9


class LinearProbe(nn.Module):
    """Softmax regression on fixed features: ``fit`` (full-batch L-BFGS with a little weight decay
    on standardised features), then ``forward`` gives class probabilities."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features, num_classes)
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def fit(self, features: torch.Tensor, labels: torch.Tensor, weight_decay: float = 1e-3,
            steps: int = 100) -> LinearProbe:
        """Fit to ``features`` ``(N, D)`` and integer ``labels`` ``(N,)``; returns itself."""
        features = features.float()
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(1e-6))
        x = (features - self.mean) / self.std
        optimizer = torch.optim.LBFGS(self.linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(self.linear(x), labels) + weight_decay * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            optimizer.step(closure)
        return self

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, C)`` for features ``(N, D)``."""
        return self.linear((features.float() - self.mean) / self.std).softmax(-1)


class ClassifierJudge(nn.Module):
    """Class probabilities of generated images from a trained visionlab classifier (a module that
    serves ``classify``): images in [-1, 1] (the generator's range, any size, 1 or 3 channels) go to
    the classifier's own input (its ``input_config``, through
    :class:`~visionlab.nets.backbone_input.BackboneInput`), then through the classifier."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.input = BackboneInput(classifier.input_config)

    def train(self, mode: bool = True) -> ClassifierJudge:
        """Always in eval mode: a fixed measuring instrument."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, C)`` for ``images`` ``(N, C, H, W)`` in [-1, 1]."""
        return self.classifier(self.input(images.float() * 0.5 + 0.5)).softmax(-1)


class ClassCoverage:
    """Class metrics of generated images from their probe probabilities, over one evaluation.

    ``compute()`` returns ``class_coverage`` (the share of classes drawn at least half as often as
    in the real reference, by the probe's verdict), ``rarest_class_share`` (the share of the least
    drawn class among all generated images), ``recognised`` (the share the probe is sure of, at
    probability >= :data:`RECOGNISED`) and, when the classes asked for were given,
    ``conditional_accuracy`` (the probe agrees with the class asked for).
    """

    def __init__(self, reference_shares: torch.Tensor) -> None:
        self.reference_shares = reference_shares.float()
        self.reset()

    def reset(self) -> None:
        """Forget the predictions so far."""
        self._predicted: list[torch.Tensor] = []
        self._confident: list[torch.Tensor] = []
        self._asked: list[torch.Tensor] = []

    def update(self, probabilities: torch.Tensor, asked: torch.Tensor | None = None) -> None:
        """Add generated images' probe probabilities ``(N, C)`` (and the classes asked for)."""
        confidence, predicted = probabilities.max(-1)
        self._predicted.append(predicted.cpu())
        self._confident.append((confidence >= RECOGNISED).cpu())
        if asked is not None:
            self._asked.append(asked.cpu())

    def compute(self) -> dict[str, float]:
        """The metrics (class docstring) over everything added since the last reset."""
        predicted = torch.cat(self._predicted)
        classes = len(self.reference_shares)
        shares = torch.bincount(predicted, minlength=classes).float() / len(predicted)
        present = self.reference_shares > 0
        fair = shares[present] >= self.reference_shares[present] / 2
        scores = {"class_coverage": float(fair.float().mean()),
                  "rarest_class_share": float(shares[present].min()),
                  "recognised": float(torch.cat(self._confident).float().mean())}
        if self._asked:
            scores["conditional_accuracy"] = float((predicted == torch.cat(self._asked)).float().mean())
        return scores
