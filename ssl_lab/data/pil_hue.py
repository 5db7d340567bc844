"""torchvision's hue adjustment of RGB PIL images, pixel for pixel, through two lookup tables.

torchvision (``transforms/_functional_pil.py``, ``adjust_hue``) converts the image to PIL's HSV,
adds ``int(hue_factor * 255)`` to H modulo 256 and converts back; the two conversions cost ~1.5 ms
on a 224 px image, the largest share of the MoCo v2 recipe's per-image time. Each conversion maps
one 24-bit colour to another, so each is tabulated once, by PIL itself, for all 2^24 colours
(64 MB a table, built on first use in ~1 s; forked loader workers share them): the adjustment is
then two gathers with the same output.
"""

import functools

import numpy as np
from PIL import Image
from torchvision.transforms import functional as F

__all__ = ["adjust_hue", "hue_tables"]

_COLOURS = 1 << 24
_CHUNK = 1 << 20  # colours converted per PIL call while building (bounds the transient memory)


def _pack(image: Image.Image) -> np.ndarray:
    """A 3-band image -> its pixels as uint32 ``c0 | c1 << 8 | c2 << 16``, (H * W,)."""
    rgb = image if image.mode == "RGB" else Image.merge("RGB", image.split())  # same bytes, RGB packer
    return np.frombuffer(rgb.tobytes("raw", "RGBX"), dtype="<u4") & 0xFFFFFF


def _unpack(codes: np.ndarray, mode: str, size) -> Image.Image:
    """uint32 ``c0 | c1 << 8 | c2 << 16``, (W * H,) -> the 3-band image of `mode`."""
    image = Image.frombytes("RGB", size, codes.astype("<u4", copy=False), "raw", "RGBX")
    return image if mode == "RGB" else Image.merge(mode, image.split())


@functools.cache
def hue_tables() -> tuple:
    """(rgb_to_hsv, hsv_to_rgb): uint32 (2^24,) tables of PIL's conversions, indexed and valued by
    packed colours (``R | G << 8 | B << 16`` and ``H | S << 8 | V << 16``)."""
    rgb_to_hsv = np.empty(_COLOURS, dtype=np.uint32)
    hsv_to_rgb = np.empty(_COLOURS, dtype=np.uint32)
    size = (1024, _CHUNK // 1024)
    for start in range(0, _COLOURS, _CHUNK):
        codes = np.arange(start, start + _CHUNK, dtype=np.uint32)
        rgb_to_hsv[start : start + _CHUNK] = _pack(_unpack(codes, "RGB", size).convert("HSV"))
        hsv_to_rgb[start : start + _CHUNK] = _pack(_unpack(codes, "HSV", size).convert("RGB"))
    return rgb_to_hsv, hsv_to_rgb


def adjust_hue(image, hue_factor: float):
    """torchvision's ``adjust_hue(image, hue_factor)``: an RGB PIL image through the tables, anything
    else (other modes, tensors) through torchvision."""
    if not isinstance(image, Image.Image) or image.mode != "RGB" or not -0.5 <= hue_factor <= 0.5:
        return F.adjust_hue(image, hue_factor)
    shift = int(hue_factor * 255) % 256  # torchvision: np.int32(hue_factor * 255) as uint8
    rgb_to_hsv, hsv_to_rgb = hue_tables()
    # the codes are < 2^24 by construction; "clip" spares numpy's bounds check (~20% of a gather)
    hsv = rgb_to_hsv.take(_pack(image), mode="clip")
    hsv = (hsv & 0xFFFF00) | ((hsv + shift) & 0xFF)
    return _unpack(hsv_to_rgb.take(hsv, mode="clip"), "RGB", image.size)
