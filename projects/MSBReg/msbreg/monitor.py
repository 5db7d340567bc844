"""Collapse statistics of embeddings: logged from the training embeddings and evaluated on the backbone."""

import torch
import torch.nn.functional as F


@torch.no_grad()
def collapse_stats(x: torch.Tensor) -> dict:
    """Statistics of M embeddings x (M, D), L2-normalized here; both fall toward their minimum on collapse.

    std: mean over dimensions of the per-dimension std (0 when collapsed; about 1/sqrt(D) when
    spread uniformly on the sphere). effective_rank: exp of the entropy of the singular values
    normalized to sum 1 (between 1 and min(M, D)). Values are 0-dim tensors on x's device (no sync).
    """
    x = F.normalize(x.detach().float(), dim=1)
    singular_values = torch.linalg.svdvals(x)
    distribution = singular_values / singular_values.sum()
    return {"std": x.std(dim=0).mean(), "effective_rank": torch.special.entr(distribution).sum().exp()}


def embedding_collapse_metrics(embeddings: torch.Tensor) -> dict:
    """collapse/embedding_* of the (M, D) online embeddings of a step: metrics that a model's forward returns
    beside its losses (the trainer logs every key that does not start with "loss")."""
    return {f"collapse/embedding_{k}": v for k, v in collapse_stats(embeddings).items()}
