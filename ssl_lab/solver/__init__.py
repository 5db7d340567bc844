from .build import LRMultiplier, build_lr_scheduler, build_optimizer, scaled_lr
from .lars import LARS

__all__ = ["LARS", "LRMultiplier", "build_lr_scheduler", "build_optimizer", "scaled_lr"]
