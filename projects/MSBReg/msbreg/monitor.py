"""Collapse statistics of normalized embeddings, and their monitor on the training embeddings."""
import torch
import torch.nn.functional as F

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

