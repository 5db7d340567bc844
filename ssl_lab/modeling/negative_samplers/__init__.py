"""Negative samplers: which of the candidate negatives each query of a contrastive loss sees.

Not to be confused with `ssl_lab.data.samplers` (which images a data loader reads).
"""

from .build import NEGATIVE_SAMPLER_REGISTRY, build_negative_sampler
from .samplers import AllNegatives, RandomNegatives

__all__ = ["NEGATIVE_SAMPLER_REGISTRY", "build_negative_sampler", "AllNegatives", "RandomNegatives"]
