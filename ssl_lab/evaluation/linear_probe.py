"""A linear probe on frozen, standardized features, its learning rate chosen on held-out training data.

Features are extracted once (the evaluation transform, no augmentation), standardized with the
statistics of the fitting split, and a softmax classifier is fitted to them full-batch: cheap enough
to run at every evaluation period, so a run logs a curve of linear accuracy, not one end point.
The learning rate is the one of `lrs` that scores best on a stratified held-out part of the
training split; the classifier is then refitted on the whole training split with it and scored on
the test split. The test split never takes part in a choice.
"""

import logging
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ssl_lab.utils import comm

from .evaluator import DatasetEvaluator
from .knn import extract_features

logger = logging.getLogger(__name__)


def stratified_holdout(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Boolean mask (M,) of a held-out part: round(fraction x n_c) random items of each class c (>= 1
    and < n_c when the class has 2+ items)."""
    generator = torch.Generator().manual_seed(seed)
    held_out = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique().tolist():
        index = (labels == c).nonzero().flatten()
        if index.numel() < 2:
            continue
        n = min(max(round(fraction * index.numel()), 1), index.numel() - 1)
        held_out[index[torch.randperm(index.numel(), generator=generator)[:n]]] = True
    return held_out


def standardize(fit: torch.Tensor, *others: torch.Tensor):
    """Each feature of `fit` (M, D) and of every `others` (M', D) shifted and scaled by the mean and
    std of `fit` (a feature constant on `fit` is only shifted)."""
    mean, std = fit.mean(0), fit.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple((x - mean) / std for x in (fit, *others))


def fit_softmax_classifier(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, lr: float, steps: int, weight_decay: float
) -> torch.nn.Linear:
    """A Linear(D, C) fitted full-batch to (features (M, D), labels (M,)) by SGD with Nesterov
    momentum 0.9 and a cosine schedule over `steps`, from zero weights (deterministic)."""
    classifier = torch.nn.Linear(features.shape[1], num_classes).to(features.dtype)
    torch.nn.init.zeros_(classifier.weight)
    torch.nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(classifier(features), labels).backward()
        optimizer.step()
    return classifier


@torch.no_grad()
def accuracy(classifier: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 (percent) of `classifier` on (features (M, D), labels (M,))."""
    return 100.0 * (classifier(features).argmax(1) == labels).double().mean().item()


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    lrs: Sequence[float],
    steps: int,
    weight_decay: float,
    holdout_fraction: float,
    seed: int = 0,
) -> dict:
    """{"linear_probe/top1": test top-1, "linear_probe/lr": the chosen lr,
    "linear_probe/holdout_top1": its held-out top-1} of a probe fitted as the module docstring says."""
    num_classes = int(torch.cat([train_labels, test_labels]).max()) + 1
    held_out = stratified_holdout(train_labels, holdout_fraction, seed)
    fit, check = standardize(train_features[~held_out], train_features[held_out])
    scores = []
    for lr in lrs:
        classifier = fit_softmax_classifier(fit, train_labels[~held_out], num_classes, lr, steps, weight_decay)
        scores.append(accuracy(classifier, check, train_labels[held_out]))
    best = max(range(len(lrs)), key=lambda i: (scores[i], -i))  # ties: the smaller lr
    train, test = standardize(train_features, test_features)
    classifier = fit_softmax_classifier(train, train_labels, num_classes, lrs[best], steps, weight_decay)
    return {
        "linear_probe/top1": accuracy(classifier, test, test_labels),
        "linear_probe/lr": float(lrs[best]),
        "linear_probe/holdout_top1": scores[best],
    }


class LinearProbeEvaluator(DatasetEvaluator):
    """The linear probe of `model.backbone`'s features: fitted on `train_loader`'s split, scored on
    `data_loader`'s. The features are those of the evaluation transform, L2-normalized. Both splits
    are gathered to every rank (bound the fitting split with TEST.LINEAR_PROBE.MAX_PER_CLASS at
    ImageNet size); every rank fits the same classifier."""

    def __init__(self, train_loader, test_loader, lrs: Sequence[float], steps: int, weight_decay: float, holdout_fraction: float):
        super().__init__(test_loader)
        self.train_loader = train_loader
        self.lrs, self.steps = tuple(lrs), steps
        self.weight_decay, self.holdout_fraction = weight_decay, holdout_fraction

    def reset(self, model):
        backbone = getattr(model, "backbone", model)
        self._train = extract_features(backbone, self.train_loader, next(model.parameters()).device)
        self._features, self._labels = [], []

    def process(self, model, images, labels):
        self._features.append(F.normalize(getattr(model, "backbone", model)(images).float(), dim=1).cpu())
        self._labels.append(labels.cpu())

    def evaluate(self) -> dict:
        gathered = comm.all_gather_object((self._features, self._labels))
        test_features = torch.cat([f for features, _ in gathered for f in features])
        test_labels = torch.cat([y for _, labels in gathered for y in labels])
        with torch.enable_grad():
            results = linear_probe(*self._train, test_features, test_labels, self.lrs, self.steps, self.weight_decay, self.holdout_fraction)
        logger.info(
            "Linear probe: top1 %.2f (lr %g chosen on held-out train, %.2f there)",
            results["linear_probe/top1"],
            results["linear_probe/lr"],
            results["linear_probe/holdout_top1"],
        )
        return results
