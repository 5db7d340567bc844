from .build import LOSS_REGISTRY, build_loss
from .byol import BYOLLoss, normalized_mse
from .info_nce import InfoNCELoss, info_nce

__all__ = ["LOSS_REGISTRY", "build_loss", "BYOLLoss", "normalized_mse", "InfoNCELoss", "info_nce"]
