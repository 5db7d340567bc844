"""EqCo's loss (Eq. 5 of the paper): InfoNCE whose negatives are weighted by alpha / K."""

import math

import torch

from ssl_lab.config import ConfigError, configurable
from ssl_lab.modeling.losses import LOSS_REGISTRY, InfoNCELoss, info_nce


def mi_lower_bound(loss: torch.Tensor, alpha) -> torch.Tensor:
    """The empirical MI lower bound log(alpha + 1) - L of Eq. 6; alpha = K for InfoNCE.

    loss: a tensor of losses; alpha: a number or a tensor broadcasting with `loss`.
    """
    return torch.log1p(torch.as_tensor(alpha, dtype=torch.float64)).to(loss.dtype) - loss


@LOSS_REGISTRY.register()
class EqCoLoss(InfoNCELoss):
    """-log(e^{s+} / (e^{s+} + (alpha / K) sum_{i=1..K} e^{s_i})), s = cos / tau, mean over queries.

    Equivalently InfoNCE with the margin tau * log(alpha / K) on the positive; computed as a
    cross-entropy over [s+, s_i + log(alpha / K)]. K = neg.shape[1] is read on every call, so one
    loss serves a queue, in-batch negatives and sampled negatives; alpha = K is InfoNCE exactly.
    """

    @configurable
    def __init__(self, alpha: float, temperature: float):
        super().__init__(temperature)
        if alpha <= 0:
            raise ConfigError(f"MODEL.EQCO.ALPHA must be > 0, got {alpha}")
        self.alpha = alpha

    @classmethod
    def from_config(cls, cfg):
        return {"alpha": cfg.MODEL.EQCO.ALPHA, "temperature": cfg.MODEL.LOSS.TEMPERATURE}

    def forward(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """pos: (N,) positive cosines; neg: (N, K) negative cosines. Returns the scalar mean loss."""
        num_negatives = neg.shape[1]
        if num_negatives == 0:
            raise ConfigError("EqCoLoss needs at least one negative per query (got K = 0)")
        return info_nce(pos, neg, self.temperature, neg_log_weight=math.log(self.alpha / num_negatives))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, temperature={self.temperature}"
