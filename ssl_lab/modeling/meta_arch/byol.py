import torch

from ..losses import PAIRED_EMBEDDINGS
from ..momentum import MomentumEncoderMixin
from .base import EmbeddingMethod
from .build import META_ARCH_REGISTRY
from .crops import crop_pairs


@META_ARCH_REGISTRY.register()
class BYOL(MomentumEncoderMixin, EmbeddingMethod):
    """BYOL: online backbone -> projector -> predictor regresses the EMA target's projection.

    The loss is symmetrized: view 1 predicts view 2's target and vice versa. With local crops
    (INPUT.MULTI_CROP) every crop's prediction also regresses the target of both global views,
    summed over the pairs as solo-learn's BYOL (solo/methods/byol.py); targets come from the two
    global views only.
    """

    LOSS_INPUTS = PAIRED_EMBEDDINGS
    HAS_PREDICTOR = True
    CROP_PAIRING = "global-local"

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(M, 3, H, W) -> (M, D) online predictions."""
        return self.predictor(self.projector(self.backbone(images)))

    def forward(self, views):
        """views: 2 global views (N, 3, H, W), then the local crops (N, 3, h, w) -> {"loss_byol"}."""
        global_views, local_views = self.split_crops(views)
        images = torch.cat(global_views[:2])
        p = list(self.predict(images).chunk(2))
        if local_views:  # one pass per resolution, as DINO's MultiCropWrapper
            p += self.predict(torch.cat(local_views)).chunk(len(local_views))
        with torch.no_grad():
            z = self.momentum_embed(images).chunk(2)
        return {"loss_byol": sum(self.loss(p[q], z[t]) for t, q in crop_pairs((0, 1), len(p)))}
