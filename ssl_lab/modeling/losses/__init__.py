from .build import (
    EMBEDDINGS,
    GLOBAL_KEYS,
    LOSS_REGISTRY,
    MULTIVIEW_EMBEDDINGS,
    PAIRED_EMBEDDINGS,
    SIMILARITIES,
    build_loss,
    compatible_losses,
)
from .byol import BYOLLoss, normalized_mse
from .info_nce import InfoNCELoss, info_nce
from .mocov3 import MoCoV3Loss, mocov3_contrastive_loss

__all__ = [
    "LOSS_REGISTRY",
    "build_loss",
    "compatible_losses",
    "SIMILARITIES",
    "PAIRED_EMBEDDINGS",
    "MULTIVIEW_EMBEDDINGS",
    "EMBEDDINGS",
    "GLOBAL_KEYS",
    "BYOLLoss",
    "normalized_mse",
    "InfoNCELoss",
    "info_nce",
    "MoCoV3Loss",
    "mocov3_contrastive_loss",
]
