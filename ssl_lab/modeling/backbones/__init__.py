from .build import BACKBONE_REGISTRY, build_backbone
from .resnet import ResNet

__all__ = ["BACKBONE_REGISTRY", "build_backbone", "ResNet"]
