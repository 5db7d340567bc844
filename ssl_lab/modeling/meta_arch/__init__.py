from .build import META_ARCH_REGISTRY, build_model, resolve_device
from .byol import BYOL
from .linear_classifier import LinearClassifier
from .moco import MoCo
from .simclr import SimCLR

__all__ = ["META_ARCH_REGISTRY", "build_model", "resolve_device", "BYOL", "LinearClassifier", "MoCo", "SimCLR"]
