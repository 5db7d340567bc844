from .build import LRMultiplier, build_lr_scheduler, build_optimizer, scaled_lr
from .lars import LARS
from .schedule import check_lr_steps, resolve_schedule

__all__ = [
    "LARS",
    "LRMultiplier",
    "build_lr_scheduler",
    "build_optimizer",
    "check_lr_steps",
    "resolve_schedule",
    "scaled_lr",
]
