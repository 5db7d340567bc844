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
    """Global dispersion: negative nuclear norm of normalized embeddings, (K, N, D) -> scalar.

    The nuclear norm sums over the N images, so the same weight pulls harder on each image of a
    larger batch. With `reference_batch` R > 0 the loss is scaled by R / N: a weight means per image
    what it means on R images (the paper's weights were tuned at its batch), whatever N is.
    """

    INPUTS = EMBEDDINGS

    @configurable
    def __init__(self, reference_batch: int = 0):
        super().__init__()
        self.reference_batch = reference_batch

    @classmethod
    def from_config(cls, cfg):
        return {"reference_batch": cfg.MODEL.MSBREG.SINGULAR_REFERENCE_BATCH}

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        loss = singular_value_loss(p)
        return loss * (self.reference_batch / p.shape[1]) if self.reference_batch else loss
