"""Weighted kNN classification of frozen features (Wu et al., 2018), the pretraining monitor."""
import logging

import torch
import torch.nn.functional as F

from ssl_lab.utils import comm

from .evaluator import DatasetEvaluator

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_features(backbone, data_loader, device):
    """All ranks' L2-normalized features (M, D) and labels (M,), in dataset order."""
    was_training = backbone.training
    backbone.eval()
    features, labels = [], []
    for images, targets in data_loader:
        features.append(F.normalize(backbone(images.to(device)).float(), dim=1).cpu())
        labels.append(torch.as_tensor(targets))
    backbone.train(was_training)
    local = (torch.cat(features), torch.cat(labels))
    gathered = comm.all_gather_object(local)
    return torch.cat([f for f, _ in gathered]), torch.cat([y for _, y in gathered])


def weighted_knn_predict(train_features, train_labels, test_features, k: int, temperature: float,
                         num_classes: int, chunk_size: int = 1024):
    """Class scores (M_test, C): the k nearest training features vote with weight exp(cos / T)."""
    k = min(k, train_features.shape[0])
    scores = []
    for start in range(0, test_features.shape[0], chunk_size):
        sim = test_features[start : start + chunk_size] @ train_features.T
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = F.one_hot(train_labels[top_idx], num_classes).float()
        scores.append((votes * (top_sim / temperature).exp().unsqueeze(-1)).sum(dim=1))
    return torch.cat(scores)


def topk_accuracy(scores, labels, ks=(1, 5)):
    """{"top{k}": percent} for each k <= number of classes."""
    ranked = scores.argsort(dim=1, descending=True)
    return {
        f"top{k}": 100.0 * (ranked[:, :k] == labels.unsqueeze(1)).any(dim=1).float().mean().item()
        for k in ks
        if k <= scores.shape[1]
    }


class KNNEvaluator(DatasetEvaluator):
    """Features of a labelled memory split vote for the labels of the query split (`data_loader`).

    The features are those of `model.backbone` (or of `model` itself if it has no backbone).
    """

    def __init__(self, memory_loader, query_loader, k: int = 200, temperature: float = 0.07):
        super().__init__(query_loader)
        self.memory_loader = memory_loader
        self.k = k
        self.temperature = temperature

    def reset(self, model):
        backbone = getattr(model, "backbone", model)
        self._memory = extract_features(backbone, self.memory_loader, next(model.parameters()).device)
        self._features, self._labels = [], []

    def process(self, model, images, labels):
        self._features.append(F.normalize(getattr(model, "backbone", model)(images).float(), dim=1).cpu())
        self._labels.append(labels.cpu())

    def evaluate(self) -> dict:
        gathered = comm.all_gather_object((torch.cat(self._features), torch.cat(self._labels)))
        test_x, test_y = torch.cat([f for f, _ in gathered]), torch.cat([y for _, y in gathered])
        train_x, train_y = self._memory
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        scores = weighted_knn_predict(train_x, train_y, test_x, self.k, self.temperature, num_classes)
        results = {f"knn/{name}": value for name, value in topk_accuracy(scores, test_y).items()}
        logger.info("kNN (k=%d, T=%.2f): %s", self.k, self.temperature,
                    "  ".join(f"{k}: {v:.2f}" for k, v in results.items()))
        return results
