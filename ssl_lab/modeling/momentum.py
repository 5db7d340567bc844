"""Momentum (EMA) copies of online modules: MoCo's key encoder, BYOL's target."""
import copy
import math

import torch
from torch import nn


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
    """For meta-architectures with `backbone` and `projector` modules: their EMA copies
    `momentum_backbone` / `momentum_projector` (MoCo's key encoder, BYOL's target) and the
    `momentum_update(m)` that the EMA hook calls after each optimizer step."""

    def init_momentum_encoder(self) -> None:
        """Call after `backbone` and `projector` are set: copies them as the momentum encoder."""
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
