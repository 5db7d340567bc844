import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import configurable

from .build import LOSS_REGISTRY, PAIRED_EMBEDDINGS


def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z), averaged over the batch. p, z: (N, D); z is treated as a constant."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


@LOSS_REGISTRY.register()
class BYOLLoss(nn.Module):
    """BYOL's regression loss between online predictions and target projections."""

    INPUTS = PAIRED_EMBEDDINGS

    @configurable
    def __init__(self):
        super().__init__()

    @classmethod
    def from_config(cls, cfg):
        return {}

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return normalized_mse(p, z)
