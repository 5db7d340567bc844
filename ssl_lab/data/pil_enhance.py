"""torchvision's brightness and contrast adjustments of RGB PIL images, pixel for pixel, through one
256-entry lookup table each.

torchvision (``transforms/_functional_pil.py``) adjusts both with ``ImageEnhance``: it builds a
degenerate image (black for brightness, the grey of the image's rounded mean luma for contrast)
and blends it with the image, ``out = (uint8) (d + factor * (v - d))`` in float32 per byte,
clipped to [0, 255] (Pillow's ``Blend.c``). With a constant `d` that is a function of the byte
`v` alone, so ``Image.point`` with the same float32 arithmetic tabulated gives the same bytes in
about half the time (no degenerate image, one input instead of two).
"""

import numpy as np
from PIL import Image, ImageStat
from torchvision.transforms import functional as F

__all__ = ["adjust_brightness", "adjust_contrast"]

_BYTES = np.arange(256, dtype=np.float32)


def _blend_table(degenerate: int, factor: float) -> list:
    """Pillow's ``Image.blend`` of the constant `degenerate` with each byte value, for 3 bands."""
    d = np.float32(degenerate)
    blended = d + np.float32(factor) * (_BYTES - d)  # float32 throughout, as Blend.c computes it
    return np.clip(blended, 0, 255).astype(np.uint8).tolist() * 3  # the cast truncates, as C's does


def _is_rgb(image) -> bool:
    return isinstance(image, Image.Image) and image.mode == "RGB"


def adjust_brightness(image, brightness_factor: float):
    """torchvision's ``adjust_brightness``: an RGB PIL image through a table, anything else through
    torchvision."""
    if not _is_rgb(image):
        return F.adjust_brightness(image, brightness_factor)
    return image.point(_blend_table(0, brightness_factor))


def adjust_contrast(image, contrast_factor: float):
    """torchvision's ``adjust_contrast``: an RGB PIL image through a table (blended with the grey
    of its mean luma, rounded, as ``ImageEnhance.Contrast`` computes it), anything else through
    torchvision."""
    if not _is_rgb(image):
        return F.adjust_contrast(image, contrast_factor)
    mean = int(ImageStat.Stat(image.convert("L")).mean[0] + 0.5)
    return image.point(_blend_table(mean, contrast_factor))
