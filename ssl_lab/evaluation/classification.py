"""Top-k accuracy of a model's own classifier (linear evaluation)."""
import logging

import torch

from ssl_lab.utils import comm

from .knn import topk_accuracy

logger = logging.getLogger(__name__)


class ClassificationEvaluator:
    """Runs `model.classify(images) -> (N, C)` over a labelled split; {"top1", "top5"} in percent."""

    def __init__(self, data_loader):
        self.data_loader = data_loader

    @torch.no_grad()
    def evaluate(self, model) -> dict:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        scores, labels = [], []
        for images, targets in self.data_loader:
            scores.append(model.classify(images.to(device)).float().cpu())
            labels.append(torch.as_tensor(targets))
        model.train(was_training)
        gathered = comm.all_gather_object((torch.cat(scores), torch.cat(labels)))
        results = topk_accuracy(torch.cat([s for s, _ in gathered]), torch.cat([y for _, y in gathered]))
        logger.info("Classification: %s", "  ".join(f"{k}: {v:.2f}" for k, v in results.items()))
        return results
