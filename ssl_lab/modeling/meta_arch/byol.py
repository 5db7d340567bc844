import torch
from torch import nn

from ..backbones import build_backbone
from ..heads import build_predictor, build_projector
from ..losses import build_loss
from ..momentum import ema_update_, make_momentum_copy
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class BYOL(nn.Module):
    """BYOL: online backbone -> projector -> predictor regresses the EMA target's projection.

    The loss is symmetrized: view 1 predicts view 2's target and vice versa.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module, loss: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.momentum_backbone = make_momentum_copy(backbone)
        self.momentum_projector = make_momentum_copy(projector)
        self.loss = loss

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        projector = build_projector(cfg, backbone.out_dim)
        return cls(backbone=backbone, projector=projector, predictor=build_predictor(cfg, projector.out_dim),
                   loss=build_loss(cfg))

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        ema_update_(self.momentum_backbone, self.backbone, momentum)
        ema_update_(self.momentum_projector, self.projector, momentum)

    def forward(self, views):
        images = torch.cat(views[:2])
        p1, p2 = self.predictor(self.projector(self.backbone(images))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.momentum_projector(self.momentum_backbone(images)).chunk(2)
        return {"loss_byol": self.loss(p1, z2) + self.loss(p2, z1)}
