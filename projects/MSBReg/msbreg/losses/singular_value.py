import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import configurable
from ssl_lab.modeling.losses import EMBEDDINGS, LOSS_REGISTRY


def singular_value_loss(p: torch.Tensor) -> torch.Tensor:
    """L_S = -mean_k ||P_k||_*, the nuclear norm of each view's batch of normalized embeddings.

    With unit rows ||P||_F^2 = N is fixed, so the nuclear norm is largest when all
    singular values are equal: minimizing L_S spreads the batch over all directions.

    Args:
        p: (K, N, D) online embeddings of K views of N images (normalized here).
    Returns:
        scalar.
    """
    return -torch.linalg.svdvals(F.normalize(p.float(), dim=-1)).sum(dim=-1).mean()


@LOSS_REGISTRY.register()
class SingularValueLoss(nn.Module):
    """Global dispersion: negative nuclear norm of normalized embeddings, (K, N, D) -> scalar."""

    INPUTS = EMBEDDINGS

    @configurable
    def __init__(self):
        super().__init__()

    @classmethod
    def from_config(cls, cfg):
        return {}

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return singular_value_loss(p)
