import torch
from torch import nn

from ssl_lab.config import configurable

from ..losses import PAIRED_EMBEDDINGS, build_loss
from ..momentum import MomentumEncoderMixin
from .base import online_encoder_from_config
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class BYOL(MomentumEncoderMixin, nn.Module):
    """BYOL: online backbone -> projector -> predictor regresses the EMA target's projection.

    The loss is symmetrized: view 1 predicts view 2's target and vice versa.
    """

    LOSS_INPUTS = PAIRED_EMBEDDINGS

    @configurable
    def __init__(self, *, backbone: nn.Module, projector: nn.Module, predictor: nn.Module, loss: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.init_momentum_encoder()
        self.loss = loss

    @classmethod
    def from_config(cls, cfg):
        return {**online_encoder_from_config(cfg, predictor=True), "loss": build_loss(cfg, cls.LOSS_INPUTS)}

    def forward(self, views):
        images = torch.cat(views[:2])
        p1, p2 = self.predictor(self.projector(self.backbone(images))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.momentum_embed(images).chunk(2)
        return {"loss_byol": self.loss(p1, z2) + self.loss(p2, z1)}
