"""Test-set evaluation of a rebuilt classifier: metrics, a per-class table, the confusion
matrix, and the most confidently wrong images ("top losses")."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch.utils.data import DataLoader

from visionlab.data.tta import averaged_log_probabilities, tta_views


@dataclass
class Evaluation:
    """Everything ``visionlab eval`` reports for one checkpoint on one test set."""

    class_names: list[str]
    confusion: torch.Tensor  # (C, C): rows are true classes, columns predictions
    losses: torch.Tensor  # (N,) cross-entropy per image, in dataset order
    predictions: torch.Tensor  # (N,)
    targets: torch.Tensor  # (N,)
    probabilities: torch.Tensor  # (N,) the predicted class's probability
    per_class: list[dict] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Correct predictions over all images."""
        return float(self.confusion.diagonal().sum() / self.confusion.sum().clamp(min=1))

    @property
    def macro_f1(self) -> float:
        """The mean of the per-class F1 scores (a class never seen nor predicted counts as 0)."""
        return sum(row["f1"] for row in self.per_class) / max(1, len(self.per_class))

    @property
    def loss(self) -> float:
        """Mean cross-entropy over the test set."""
        return float(self.losses.mean())

    def most_confidently_wrong(self, k: int) -> list[int]:
        """Dataset indices of the ``k`` wrong predictions made with the highest probability, highest
        first (the order of their captions). Not the highest losses: the loss reads the true class's
        probability, so a 0.45 guess with the truth at 0.01 would rank above a 0.9 one."""
        wrong = (self.predictions != self.targets).nonzero().flatten()
        order = self.probabilities[wrong].argsort(descending=True, stable=True)
        return wrong[order[:k]].tolist()

    def as_dict(self) -> dict:
        """Every number, for ``eval.json``."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "loss": self.loss,
                "images": int(self.confusion.sum()), "classes": self.class_names,
                "per_class": self.per_class, "confusion_matrix": self.confusion.tolist()}


def per_class_table(confusion: torch.Tensor, class_names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support of every class from a confusion matrix."""
    matrix = confusion.double()
    rows = []
    for index, name in enumerate(class_names):
        tp = matrix[index, index]
        predicted, actual = matrix[:, index].sum(), matrix[index].sum()
        precision = float(tp / predicted) if predicted else 0.0
        recall = float(tp / actual) if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": precision, "recall": recall, "f1": f1,
                     "support": int(actual)})
    return rows


@torch.no_grad()
def evaluate(model, loader: DataLoader, class_names: list[str], description: str = "evaluating",
             tta: str = "none") -> Evaluation:
    """Run ``model`` (eval mode) over ``loader``, its softmax averaged over the ``tta`` views
    (:mod:`visionlab.data.tta`; ``none``: the plain score); a progress bar counts the batches."""
    views = tta_views(tta)
    model.eval()
    losses, predictions, targets, probabilities = [], [], [], []
    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=len(loader))
        for x, y in loader:
            log_probs = averaged_log_probabilities(model, x.to(model.device), views).cpu()
            losses.append(F.nll_loss(log_probs, y, reduction="none"))
            probs = log_probs.exp()
            confidence, predicted = probs.max(dim=-1)
            predictions.append(predicted)
            probabilities.append(confidence)
            targets.append(y)
            bar.advance(task)
    predictions, targets = torch.cat(predictions), torch.cat(targets)
    count = len(class_names)
    confusion = torch.bincount(targets * count + predictions, minlength=count * count).view(count, count)
    return Evaluation(class_names, confusion, torch.cat(losses), predictions, targets,
                      torch.cat(probabilities), per_class_table(confusion, class_names))
