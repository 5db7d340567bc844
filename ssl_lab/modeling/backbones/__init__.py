from .build import BACKBONE_REGISTRY, build_backbone
from .resnet import ResNet
from .timm_backbone import TimmBackbone

__all__ = ["BACKBONE_REGISTRY", "build_backbone", "ResNet", "TimmBackbone"]
