"""Collapse monitor: spread and effective rank of normalized embeddings, in training and in the kNN eval."""
import torch
import torch.nn.functional as F

from ssl_lab.evaluation import KNNEvaluator, extract_features
from ssl_lab.utils.events import get_event_storage


@torch.no_grad()
def collapse_stats(x: torch.Tensor) -> dict:
    """Statistics of M embeddings x (M, D), L2-normalized here; both fall toward their minimum on collapse.

    std: mean over dimensions of the per-dimension std (0 when collapsed; about 1/sqrt(D) when
    spread uniformly on the sphere). effective_rank: exp of the entropy of the singular values
    normalized to sum 1 (between 1 and min(M, D)).
    """
    x = F.normalize(x.float(), dim=1)
    singular_values = torch.linalg.svdvals(x)
    distribution = singular_values / singular_values.sum()
    return {
        "std": x.std(dim=0).mean().item(),
        "effective_rank": torch.special.entr(distribution).sum().exp().item(),
    }


class CollapseMonitor:
    """Logs collapse_stats of the training embeddings as collapse/embedding_* every `period` iterations."""

    def __init__(self, period: int):
        self.period = period

    def __call__(self, embeddings: torch.Tensor) -> None:
        """embeddings: (M, D) online embeddings of the current step."""
        storage = get_event_storage()
        if (storage.iter + 1) % self.period == 0:
            stats = collapse_stats(embeddings.detach())
            storage.put_scalars(smoothing_hint=False, **{f"collapse/embedding_{k}": v for k, v in stats.items()})


class CollapseKNNEvaluator:
    """A KNNEvaluator whose results also hold collapse/backbone_* stats of the query split's features."""

    def __init__(self, knn: KNNEvaluator):
        self.knn = knn

    def evaluate(self, model) -> dict:
        """kNN results and collapse stats of `model.backbone` (or of `model` if it has none)."""
        results = self.knn.evaluate(model)
        backbone = getattr(model, "backbone", model)
        features, _ = extract_features(backbone, self.knn.query_loader, next(backbone.parameters()).device)
        results.update({f"collapse/backbone_{k}": v for k, v in collapse_stats(features).items()})
        return results
