import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import ConfigError, configurable

from .build import LOSS_REGISTRY, SIMILARITIES


def info_nce(pos: torch.Tensor, neg: torch.Tensor, temperature: float, neg_log_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy with the positive at index 0.

    Args:
        pos: (N,) similarity of each query with its positive key.
        neg: (N, K) similarities with the K negatives each query sees.
        temperature: tau > 0; logits are similarities / tau.
        neg_log_weight: added to every negative logit, i.e. each negative term is
            weighted by exp(neg_log_weight) (EqCo uses log(alpha / K)).
    Returns:
        scalar mean loss over the N queries.
    """
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1) / temperature
    if neg_log_weight:
        logits = torch.cat([logits[:, :1], logits[:, 1:] + neg_log_weight], dim=1)
    target = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
    return F.cross_entropy(logits.float(), target)


@LOSS_REGISTRY.register()
class InfoNCELoss(nn.Module):
    """InfoNCE: -log(e^{s+} / (e^{s+} + sum_i e^{s_i})) with s = cos / tau."""

    INPUTS = SIMILARITIES

    @configurable
    def __init__(self, temperature: float):
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"MODEL.LOSS.TEMPERATURE must be > 0, got {temperature}")
        self.temperature = temperature

    @classmethod
    def from_config(cls, cfg):
        return {"temperature": cfg.MODEL.LOSS.TEMPERATURE}

    def forward(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        if neg.shape[1] == 0:
            raise ConfigError("InfoNCE needs at least one negative per query (got K = 0)")
        return info_nce(pos, neg, self.temperature)
