"""A toy method: BYOL without its momentum target network."""

import torch

from ssl_lab.config import configurable
from ssl_lab.modeling import META_ARCH_REGISTRY
from ssl_lab.modeling.losses import PAIRED_EMBEDDINGS
from ssl_lab.modeling.meta_arch import EmbeddingMethod


@META_ARCH_REGISTRY.register()
class TargetlessBYOL(EmbeddingMethod):
    """Backbone -> projector -> predictor; each view's prediction regresses the other view's online
    projection under stop-gradient (SimSiam's architecture, with BYOL's loss 2 - 2 cos)."""

    LOSS_INPUTS = PAIRED_EMBEDDINGS  # e.g. MODEL.LOSS.NAME "BYOLLoss"
    HAS_PREDICTOR = True

    @configurable
    def __init__(self, *, symmetric: bool, **kwargs):
        super().__init__(**kwargs)
        self.symmetric = symmetric

    @classmethod
    def from_config(cls, cfg):
        return {**super().from_config(cfg), "symmetric": cfg.MODEL.TARGETLESS.SYMMETRIC}

    def forward(self, views):
        """views: 2 views (N, 3, H, W) -> {"loss_targetless": scalar}."""
        z = self.projector(self.backbone(torch.cat(views[:2])))
        p, z = self.predictor(z).chunk(2), z.detach().chunk(2)
        loss = self.loss(p[0], z[1])
        if self.symmetric:
            loss = loss + self.loss(p[1], z[0])
        return {"loss_targetless": loss}
