import torch
from torch import nn

from ssl_lab.config import ConfigError, configurable

from .build import NEGATIVE_SAMPLER_REGISTRY


@NEGATIVE_SAMPLER_REGISTRY.register()
class AllNegatives(nn.Module):
    """Every candidate is a negative: (N, M) -> (N, M)."""

    @configurable
    def __init__(self):
        super().__init__()

    @classmethod
    def from_config(cls, cfg):
        return {}

    def negatives_per_query(self, candidates: int, source: str) -> int:
        """K for M = `candidates` (drawn from `source`); raises ValueError for K = 0."""
        if candidates <= 0:
            raise ConfigError(f"Each query needs at least one negative; the config gives K = {candidates} from {source}")
        return candidates

    def forward(self, neg: torch.Tensor) -> torch.Tensor:
        return neg


@NEGATIVE_SAMPLER_REGISTRY.register()
class RandomNegatives(nn.Module):
    """K random negatives out of M candidates: (N, M) -> (N, K).

    shared=True draws one subset of columns for all queries (one gather, as in
    the official SiMo code); shared=False draws an independent subset per query.
    """

    @configurable
    def __init__(self, num_negatives: int, shared: bool = True):
        super().__init__()
        if num_negatives <= 0:
            raise ConfigError(f"MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES must be > 0, got {num_negatives}")
        self.num_negatives = num_negatives
        self.shared = shared

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.NEGATIVE_SAMPLER
        return {"num_negatives": node.NUM_NEGATIVES, "shared": node.SHARED}

    def negatives_per_query(self, candidates: int, source: str) -> int:
        """K = num_negatives; raises ValueError if the M = `candidates` (from `source`) are fewer."""
        if self.num_negatives > candidates:
            raise ConfigError(
                f"MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES = {self.num_negatives} is more than the "
                f"{candidates} candidates of {source}; the largest valid value is {candidates}"
            )
        return self.num_negatives

    def forward(self, neg: torch.Tensor) -> torch.Tensor:
        n, m = neg.shape
        if self.num_negatives > m:
            raise ValueError(f"Cannot draw {self.num_negatives} negatives from {m} candidates")
        if self.shared:
            return neg[:, torch.randperm(m, device=neg.device)[: self.num_negatives]]
        index = torch.rand(n, m, device=neg.device).argsort(dim=1)[:, : self.num_negatives]
        return neg.gather(1, index)
