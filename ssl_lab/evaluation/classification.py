"""Top-k accuracy of a model's own classifier (linear evaluation)."""

import logging

import torch

from ssl_lab.utils import comm

from .evaluator import DatasetEvaluator
from .knn import topk_accuracy

logger = logging.getLogger(__name__)


class ClassificationEvaluator(DatasetEvaluator):
    """Top-k of `model.classify(images) -> (N, C)` over a labelled split; {"top1", "top5"} in percent."""

    def reset(self, model):
        self._scores, self._labels = [], []

    def process(self, model, images, labels):
        self._scores.append(model.classify(images).float().cpu())
        self._labels.append(labels.cpu())

    def evaluate(self) -> dict:
        gathered = comm.all_gather_object((torch.cat(self._scores), torch.cat(self._labels)))
        results = topk_accuracy(torch.cat([s for s, _ in gathered]), torch.cat([y for _, y in gathered]))
        logger.info("Classification: %s", "  ".join(f"{k}: {v:.2f}" for k, v in results.items()))
        return results
