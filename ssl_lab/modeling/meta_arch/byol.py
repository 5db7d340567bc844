import torch

from ..losses import PAIRED_EMBEDDINGS
from ..momentum import MomentumEncoderMixin
from .base import EmbeddingMethod
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class BYOL(MomentumEncoderMixin, EmbeddingMethod):
    """BYOL: online backbone -> projector -> predictor regresses the EMA target's projection.

    The loss is symmetrized: view 1 predicts view 2's target and vice versa.
    """

    LOSS_INPUTS = PAIRED_EMBEDDINGS
    HAS_PREDICTOR = True

    def forward(self, views):
        images = torch.cat(views[:2])
        p1, p2 = self.predictor(self.projector(self.backbone(images))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.momentum_embed(images).chunk(2)
        return {"loss_byol": self.loss(p1, z2) + self.loss(p2, z1)}
