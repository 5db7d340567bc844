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


def direction_seed(base_seed: int, iteration: int, rank: int, draw: int = 0) -> int:
    """A well-mixed seed for one (run seed, iteration, rank, draw within the iteration):
    resuming a run redraws the same directions."""
    return int(np.random.SeedSequence([base_seed, iteration, rank, draw]).generate_state(1)[0])


@LOSS_REGISTRY.register()
class BrownianDiffusiveLoss(nn.Module):
    """Local dispersion without other particles: (K, N, D) -> scalar.

    The directions depend only on (seed, iteration, rank, draw): the iteration is read from
    the event storage, so call it inside a training step; `draw` counts the calls within the
    iteration (micro-batches of gradient accumulation), so each gets fresh directions.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed
        self._iteration, self._draw = None, 0  # the iteration of the last call, and its draw

    @classmethod
    def from_config(cls, cfg):
        return cls(seed=max(cfg.SEED, 0))  # as the train loader: a negative SEED means 0

    def directions(self, num: int, dim: int, iteration: int, draw: int = 0) -> torch.Tensor:
        """(num, dim) unit directions of the `draw`-th call at `iteration` on this rank."""
        return random_directions(num, dim, direction_seed(self.seed, iteration, comm.get_rank(), draw))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        iteration = get_event_storage().iter
        self._draw = self._draw + 1 if iteration == self._iteration else 0
        self._iteration = iteration
        directions = self.directions(p.shape[1], p.shape[2], iteration, self._draw)
        return brownian_diffusive_loss(p, directions.to(p.device))
