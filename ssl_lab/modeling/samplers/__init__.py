from .build import NEGATIVE_SAMPLER_REGISTRY, build_negative_sampler
from .negative_samplers import AllNegatives, RandomNegatives

__all__ = ["NEGATIVE_SAMPLER_REGISTRY", "build_negative_sampler", "AllNegatives", "RandomNegatives"]
