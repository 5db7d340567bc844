from .build import HEAD_REGISTRY, build_head, build_predictor, build_projector
from .mlp import BYOLHead, MLPHead
from .mocov3 import MoCoV3Head

__all__ = ["HEAD_REGISTRY", "build_head", "build_predictor", "build_projector", "MLPHead", "BYOLHead", "MoCoV3Head"]
