from .base import ContrastiveMethod, EmbeddingMethod, online_encoder_from_config
from .build import META_ARCH_REGISTRY, build_model
from .byol import BYOL
from .linear_classifier import LinearClassifier
from .moco import MoCo
from .mocov3 import MoCoV3
from .simclr import SimCLR

__all__ = [
    "META_ARCH_REGISTRY",
    "build_model",
    "ContrastiveMethod",
    "EmbeddingMethod",
    "online_encoder_from_config",
    "BYOL",
    "LinearClassifier",
    "MoCo",
    "MoCoV3",
    "SimCLR",
]
