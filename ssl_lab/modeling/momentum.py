"""Momentum (EMA) copies of online modules: MoCo's key encoder, BYOL's target."""

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import configurable
from ssl_lab.layers import batch_shuffle, batch_unshuffle


def make_momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of `module`, initialized to the same weights."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online, for parameters only (buffers untouched)."""
    target_params = list(target.parameters())
    online_params = [p.detach() for p in online.parameters()]
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, online_params, alpha=1.0 - momentum)


def momentum_at(base: float, cosine: bool, iteration: int, max_iter: int) -> float:
    """The EMA momentum at `iteration`: constant, or BYOL's cosine increase from `base` to 1."""
    if not cosine:
        return base
    return 1.0 - (1.0 - base) * (math.cos(math.pi * iteration / max_iter) + 1) / 2


class MomentumEncoderMixin:
    """Mixed in before a method with `backbone` and `projector` modules: their EMA copies
    `momentum_backbone` / `momentum_projector` (MoCo's key encoder, BYOL's target), made once the
    method's `__init__` has set them, and the `momentum_update(m)` that the EMA hook calls after
    each optimizer step."""

    # The update after optimizer step t uses the momentum of iteration t + MOMENTUM_ITERATION_OFFSET:
    # 0 as BYOL (its target moves after the step, with that step's momentum); 1 as MoCo v3, whose
    # momentum encoder moves at the start of the next forward, with the next iteration's momentum.
    MOMENTUM_ITERATION_OFFSET = 0

    @configurable
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.momentum_backbone = make_momentum_copy(self.backbone)
        self.momentum_projector = make_momentum_copy(self.projector)

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        ema_update_(self.momentum_backbone, self.backbone, momentum)
        ema_update_(self.momentum_projector, self.projector, momentum)

    @torch.no_grad()
    def momentum_embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D) projections of the momentum encoder (not normalized)."""
        return self.momentum_projector(self.momentum_backbone(images))

    @torch.no_grad()
    def encode_keys(self, images: torch.Tensor, shuffle_bn: bool = False) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D) normalized keys; `shuffle_bn` shuffles the batch across ranks
        for the momentum encoder's BN and restores the order after (MoCo's shuffle-BN)."""
        idx_unshuffle = None
        if shuffle_bn:
            images, idx_unshuffle = batch_shuffle(images)
        return batch_unshuffle(F.normalize(self.momentum_embed(images), dim=1), idx_unshuffle)
