"""The three MSBReg losses, each a pure function plus a module in ssl_lab's LOSS_REGISTRY."""

from .brownian import BrownianDiffusiveLoss, brownian_diffusive_loss, direction_seed, random_directions
from .centroid import MultiviewCentroidLoss, multiview_centroid_loss
from .singular_value import SingularValueLoss, singular_value_loss

__all__ = [k for k in dict(globals()) if not k.startswith("_")]
