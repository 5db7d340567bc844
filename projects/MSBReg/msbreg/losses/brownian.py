import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import configurable
from ssl_lab.modeling.losses import EMBEDDINGS, LOSS_REGISTRY
from ssl_lab.utils import comm


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


def direction_seed(base_seed: int, step: int, rank: int) -> int:
    """A well-mixed seed for one (run seed, step, rank): resuming a run redraws the same directions."""
    return int(np.random.SeedSequence([base_seed, step, rank]).generate_state(1)[0])


@LOSS_REGISTRY.register()
class BrownianDiffusiveLoss(nn.Module):
    """Local dispersion without other particles: (K, N, D) -> scalar.

    The directions depend only on (seed, step, rank), where `step` counts this module's calls
    (every micro-batch gets fresh directions). The count is part of the state dict, so a resumed
    run redraws what the uninterrupted run would have drawn; the module needs no trainer.
    """

    INPUTS = EMBEDDINGS

    @configurable
    def __init__(self, seed: int):
        super().__init__()
        self.seed = seed
        self.step = 0  # a Python int: reading it costs no device sync

    @classmethod
    def from_config(cls, cfg):
        return {"seed": max(cfg.SEED, 0)}  # as the train loader: a negative SEED means 0

    def directions(self, num: int, dim: int, step: int) -> torch.Tensor:
        """(num, dim) unit directions of call number `step` on this rank."""
        return random_directions(num, dim, direction_seed(self.seed, step, comm.get_rank()))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        directions = self.directions(p.shape[1], p.shape[2], self.step)
        self.step += 1
        return brownian_diffusive_loss(p, directions.to(p.device))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "step"] = torch.tensor(self.step)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        if prefix + "step" in state_dict:
            self.step = int(state_dict.pop(prefix + "step"))
        else:
            missing_keys.append(prefix + "step")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
