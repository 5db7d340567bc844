import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.modeling.losses import LOSS_REGISTRY
from ssl_lab.utils import comm
from ssl_lab.utils.events import get_event_storage


def brownian_diffusive_loss(p: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """L_B = mean_n < mean_k normalize(p_{n,k}), r_n >: a push of each image along a random direction.

    Args:
        p: (K, N, D) online embeddings of K views of N images (normalized here).
        directions: (N, D) unit directions r_n, drawn afresh every step.
    Returns:
        scalar; its gradient is zero in expectation over isotropic directions.
    """
    centroids = F.normalize(p.float(), dim=-1).mean(dim=0)
    return (centroids * directions).sum(dim=-1).mean()


def random_directions(num: int, dim: int, seed: int) -> torch.Tensor:
    """(num, dim) rows uniform on the unit sphere, a pure function of `seed` (drawn on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num, dim, generator=generator), dim=-1)


def direction_seed(base_seed: int, iteration: int, rank: int) -> int:
    """A well-mixed seed for one (run seed, iteration, rank): resuming a run redraws the same directions."""
    return int(np.random.SeedSequence([base_seed, iteration, rank]).generate_state(1)[0])


@LOSS_REGISTRY.register()
class BrownianDiffusiveLoss(nn.Module):
    """Local dispersion without other particles: (K, N, D) -> scalar.

    The directions of a step depend only on (seed, iteration, rank); the iteration is
    read from the event storage, so call it inside a training step.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed

    @classmethod
    def from_config(cls, cfg):
        return cls(seed=max(cfg.SEED, 0))  # as the train loader: a negative SEED means 0

    def directions(self, num: int, dim: int, iteration: int) -> torch.Tensor:
        """(num, dim) unit directions of `iteration` on this rank."""
        return random_directions(num, dim, direction_seed(self.seed, iteration, comm.get_rank()))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        directions = self.directions(p.shape[1], p.shape[2], get_event_storage().iter)
        return brownian_diffusive_loss(p, directions.to(p.device))
