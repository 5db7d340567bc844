import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import ConfigError, configurable
from ssl_lab.modeling.losses import LOSS_REGISTRY, MULTIVIEW_EMBEDDINGS


def multiview_centroid_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """L_MC = mean_k || normalize(p_k) - sg(normalize(mean_{j != k} normalize(z_j))) ||^2.

    Args:
        p: (K, N, D) online predictions of K >= 2 views of N images.
        z: (K, N, D) target projections of the same views; no gradient flows into them.
    Returns:
        scalar, averaged over views and images. With K = 2 it is half of symmetric
        BYOL's loss, which sums its two directions.
    """
    num_views = p.shape[0]
    if num_views < 2:
        raise ConfigError(f"The multi-view centroid loss needs K >= 2 views, got {num_views}")
    z = F.normalize(z.detach().float(), dim=-1)
    others = (z.sum(dim=0, keepdim=True) - z) / (num_views - 1)
    centroids = F.normalize(others, dim=-1)
    p = F.normalize(p.float(), dim=-1)
    return (p - centroids).pow(2).sum(dim=-1).mean()


@LOSS_REGISTRY.register()
class MultiviewCentroidLoss(nn.Module):
    """Pulls each online view toward the target centroid of the other views: (K, N, D) x 2 -> scalar."""

    INPUTS = MULTIVIEW_EMBEDDINGS

    @configurable
    def __init__(self):
        super().__init__()

    @classmethod
    def from_config(cls, cfg):
        return {}

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return multiview_centroid_loss(p, z)
