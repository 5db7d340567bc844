"""Batched multi-view augmentation on the device, and the uint8 loading path that feeds it.

The loader ships uint8 squares of INPUT.BATCHED_AUGMENTATION_SIZE px (:mod:`.loading`); a whole
batch (N, 3, H, W) is converted to float and augmented on the device with per-sample random
parameters (:mod:`.ops`). The recipes are the torchvision recipes of ``TRANSFORM_REGISTRY``,
translated op by op (:mod:`.recipes`), so a recipe name means the same augmentation on both paths.

Differences from the PIL path: the random resized crop is taken from the fixed-size uint8 square
(not the original file, so the ends of an oblong image's long side are never seen), resampled with
``roi_align`` (bilinear, averaging ``ceil(crop / output)`` samples per output pixel instead of
PIL's antialiasing filter); colour jitter applies brightness, contrast, saturation, hue in this
fixed order (torchvision draws a random order per image); the blur is an exact Gaussian of
+-3 sigma where PIL approximates it with box filters (within 1/255 on average on smooth images;
on pixel noise with sigma below ~0.6 PIL's filter blurs visibly more); right-angle rotations (a RandomChoice of
fixed RandomRotations) are drawn from the generator, where torchvision's RandomChoice draws from
Python's `random`; intermediate results stay float instead of being rounded to uint8 after each op.
"""

from .loading import *  # noqa: F401,F403
from .ops import *  # noqa: F401,F403
from .recipes import *  # noqa: F401,F403
