import torch

from ssl_lab.utils import comm

from ..losses import GLOBAL_KEYS
from ..momentum import MomentumEncoderMixin
from .base import EmbeddingMethod
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class MoCoV3(MomentumEncoderMixin, EmbeddingMethod):
    """MoCo v3 (facebookresearch/moco-v3 `moco/builder.py`): queries q = predictor(projector(backbone(view)))
    against keys k = EMA projector(EMA backbone(other view)), the keys of the whole global batch
    gathered without gradient, no queue. Symmetric: loss(q1, k2) + loss(q2, k1), each view run through
    the encoders on its own (BN statistics per view, as the official forward).
    """

    LOSS_INPUTS = GLOBAL_KEYS
    HAS_PREDICTOR = True
    MOMENTUM_ITERATION_OFFSET = 1

    @classmethod
    def negatives_per_query(cls, cfg) -> int:
        """K: the other keys of a global micro-batch of SOLVER.IMS_PER_BATCH / SOLVER.GRAD_ACCUM_STEPS images."""
        return cfg.SOLVER.IMS_PER_BATCH // cfg.SOLVER.GRAD_ACCUM_STEPS - 1

    @classmethod
    def from_config(cls, cfg):
        if cfg.MODEL.QUEUE.NAME:
            raise ValueError(f"MoCo v3 has no memory bank: set MODEL.QUEUE.NAME to '' (got '{cfg.MODEL.QUEUE.NAME}')")
        return super().from_config(cfg)

    def forward(self, views):
        """views: [view 1, view 2, ...], each (N, 3, H, W) on this rank. Returns {"loss_contrastive": scalar}."""
        q1, q2 = (self.predictor(self.projector(self.backbone(v))) for v in views[:2])
        with torch.no_grad():
            k1, k2 = (comm.all_gather_tensor(self.momentum_embed(v)) for v in views[:2])
        rank = comm.get_rank()
        return {"loss_contrastive": self.loss(q1, k2, rank) + self.loss(q2, k1, rank)}
