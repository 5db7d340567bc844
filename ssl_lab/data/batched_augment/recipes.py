"""Translation of the torchvision recipes of ``TRANSFORM_REGISTRY`` into batched ops, op by op, so
a recipe name means the same augmentation on the PIL and the batched path."""

import math

from torchvision import transforms as T

from ssl_lab.config import ConfigError

from ..transforms import GaussianBlur, ToNormalizedTensor, view_transforms
from . import ops

__all__ = ["batched_view", "build_batched_augmentation"]


def _right_angles(choice: T.RandomChoice):
    """The angles of a RandomChoice of fixed right-angle RandomRotations, else None."""
    rotations = [
        t
        for t in choice.transforms
        if isinstance(t, T.RandomRotation) and not t.expand and t.center is None and t.degrees[0] == t.degrees[1] and t.degrees[0] % 90 == 0
    ]
    return [int(t.degrees[0]) for t in rotations] if len(rotations) == len(choice.transforms) else None


def _convert(transform, p: float = 1.0):
    """A torchvision v1 transform (or one of ssl_lab.data.transforms) -> list of batched ops
    (ToTensor -> nothing)."""
    if isinstance(transform, T.Compose):
        return [op for t in transform.transforms for op in _convert(t, p)]
    if isinstance(transform, T.RandomApply):
        return [op for t in transform.transforms for op in _convert(t, p * transform.p)]
    if isinstance(transform, T.ToTensor):
        return []
    if p != 1.0 and not isinstance(transform, (T.ColorJitter, T.GaussianBlur, GaussianBlur)):
        raise ConfigError(f"RandomApply around {type(transform).__name__} has no batched equivalent")
    if isinstance(transform, T.RandomResizedCrop):
        return [ops.BatchedRandomResizedCrop(transform.size[0], transform.scale, transform.ratio)]
    if isinstance(transform, T.ColorJitter):
        return [ops.BatchedColorJitter(transform.brightness, transform.contrast, transform.saturation, transform.hue, p)]
    if isinstance(transform, T.RandomGrayscale):
        return [ops.BatchedGrayscale(transform.p)]
    if isinstance(transform, T.GaussianBlur):
        return [ops.BatchedGaussianBlur(transform.kernel_size, transform.sigma, p)]
    if isinstance(transform, GaussianBlur):  # PIL's untruncated filter: a kernel of +-3 sigma
        return [ops.BatchedGaussianBlur(2 * math.ceil(3 * max(transform.sigma)) + 1, transform.sigma, p)]
    if isinstance(transform, T.RandomSolarize):  # the PIL recipes give the threshold in uint8 units
        return [ops.BatchedSolarize(transform.threshold / 255, transform.p)]
    if isinstance(transform, T.RandomHorizontalFlip):
        return [ops.BatchedHorizontalFlip(transform.p)]
    if isinstance(transform, T.RandomChoice) and _right_angles(transform) is not None:
        return [ops.BatchedRightAngleRotation(_right_angles(transform), transform.p)]
    if isinstance(transform, (T.Normalize, ToNormalizedTensor)):
        return [ops.BatchedNormalize(transform.mean, transform.std)]
    raise ConfigError(f"{type(transform).__name__} has no batched equivalent in ssl_lab.data.batched_augment")


def batched_view(transform) -> ops.BatchedView:
    """The batched equivalent of one view of a TRANSFORM_REGISTRY recipe (a torchvision Compose
    starting with RandomResizedCrop)."""
    view = _convert(transform)
    if not view or not isinstance(view[0], ops.BatchedRandomResizedCrop):
        raise ConfigError("a batched view must start with RandomResizedCrop (it fixes the output size)")
    return ops.BatchedView(*view)


def build_batched_augmentation(cfg) -> ops.BatchedMultiView:
    """The recipe cfg.INPUT.AUGMENTATION with cfg.INPUT.NUM_VIEWS global views and
    cfg.INPUT.MULTI_CROP.NUM_LOCAL local crops, as a batched module."""
    views = view_transforms(cfg)
    return ops.BatchedMultiView([batched_view(v) for v in views], len(views))
