"""detectron2 transfer of ssl_lab backbones: trainer, MoCo's C4 head, the Shapes dataset.

Imports d2_compat first, so detectron2's pure-Python install (`make d2`) works.
"""
from . import d2_compat  # noqa: F401  (must precede any detectron2 import)

from .config import add_transfer_config
from .roi_heads import Res5ROIHeadsExtraNorm
from .shapes import register_shapes
from .trainer import Trainer

__all__ = ["add_transfer_config", "Res5ROIHeadsExtraNorm", "register_shapes", "Trainer"]
