from .build import QUEUE_REGISTRY, build_queue
from .moco_queue import MoCoQueue

__all__ = ["QUEUE_REGISTRY", "build_queue", "MoCoQueue"]
