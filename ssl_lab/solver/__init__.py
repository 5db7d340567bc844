from .build import LRMultiplier, build_lr_scheduler, build_optimizer, scaled_lr
from .lars import LARS
from .schedule import resolve_schedule

__all__ = ["LARS", "LRMultiplier", "build_lr_scheduler", "build_optimizer", "resolve_schedule", "scaled_lr"]
