import torch
from torch import nn

from ..backbones import build_backbone
from ..heads import build_predictor, build_projector
from ..losses import build_loss
from ..momentum import MomentumEncoderMixin
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class BYOL(MomentumEncoderMixin, nn.Module):
    """BYOL: online backbone -> projector -> predictor regresses the EMA target's projection.

    The loss is symmetrized: view 1 predicts view 2's target and vice versa.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module, loss: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.init_momentum_encoder()
        self.loss = loss

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        projector = build_projector(cfg, backbone.out_dim)
        return cls(backbone=backbone, projector=projector, predictor=build_predictor(cfg, projector.out_dim),
                   loss=build_loss(cfg))

    def forward(self, views):
        images = torch.cat(views[:2])
        p1, p2 = self.predictor(self.projector(self.backbone(images))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.momentum_embed(images).chunk(2)
        return {"loss_byol": self.loss(p1, z2) + self.loss(p2, z1)}
