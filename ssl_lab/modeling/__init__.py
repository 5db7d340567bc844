"""Models: one registry and one build_* function per component kind."""

from .backbones import BACKBONE_REGISTRY, build_backbone
from .heads import HEAD_REGISTRY, build_head, build_predictor, build_projector
from .losses import LOSS_REGISTRY, build_loss
from .meta_arch import META_ARCH_REGISTRY, build_model
from .queues import QUEUE_REGISTRY, build_queue
from .negative_samplers import NEGATIVE_SAMPLER_REGISTRY, build_negative_sampler

__all__ = [k for k in dict(globals()) if not k.startswith("_")]
