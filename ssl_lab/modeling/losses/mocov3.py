import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import configurable

from .build import GLOBAL_KEYS, LOSS_REGISTRY


def mocov3_contrastive_loss(q: torch.Tensor, keys: torch.Tensor, rank: int, temperature: float) -> torch.Tensor:
    """MoCo v3's contrastive loss (moco-v3 `moco/builder.py`, `contrastive_loss`).

    Args:
        q: (N, D) this rank's queries (normalized here).
        keys: (W * N, D) the keys of all W ranks, rank r's at rows r * N ... r * N + N - 1 (normalized here).
        rank: this rank; query i's positive is key rank * N + i, the other W * N - 1 keys are its negatives.
        temperature: tau > 0.
    Returns:
        scalar: the cross-entropy of the logits q k^T / tau, averaged over the N queries, times 2 tau.
    """
    q, keys = F.normalize(q, dim=1), F.normalize(keys, dim=1)
    logits = q @ keys.T / temperature
    labels = torch.arange(q.shape[0], device=q.device) + q.shape[0] * rank
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float16 under AMP: in float32
    return F.cross_entropy(logits, labels) * (2 * temperature)


@LOSS_REGISTRY.register()
class MoCoV3Loss(nn.Module):
    """:func:`mocov3_contrastive_loss` at MODEL.LOSS.TEMPERATURE."""

    INPUTS = GLOBAL_KEYS

    @configurable
    def __init__(self, temperature: float):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"MODEL.LOSS.TEMPERATURE must be > 0, got {temperature}")
        self.temperature = temperature

    @classmethod
    def from_config(cls, cfg):
        return {"temperature": cfg.MODEL.LOSS.TEMPERATURE}

    def forward(self, q: torch.Tensor, keys: torch.Tensor, rank: int) -> torch.Tensor:
        return mocov3_contrastive_loss(q, keys, rank, self.temperature)
