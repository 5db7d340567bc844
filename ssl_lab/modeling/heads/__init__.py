from .build import HEAD_REGISTRY, build_head, build_predictor, build_projector
from .mlp import BYOLHead, MLPHead

__all__ = ["HEAD_REGISTRY", "build_head", "build_predictor", "build_projector", "MLPHead", "BYOLHead"]
