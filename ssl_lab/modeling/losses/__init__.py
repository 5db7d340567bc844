from .build import (EMBEDDINGS, LOSS_REGISTRY, MULTIVIEW_EMBEDDINGS, PAIRED_EMBEDDINGS, SIMILARITIES, build_loss,
                    compatible_losses)
from .byol import BYOLLoss, normalized_mse
from .info_nce import InfoNCELoss, info_nce

__all__ = ["LOSS_REGISTRY", "build_loss", "compatible_losses", "SIMILARITIES", "PAIRED_EMBEDDINGS",
           "MULTIVIEW_EMBEDDINGS", "EMBEDDINGS", "BYOLLoss", "normalized_mse", "InfoNCELoss", "info_nce"]
