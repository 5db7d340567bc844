"""The loader-side transform of the batched path: decoded images -> uint8 squares of one size."""

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ssl_lab.config import ConfigError

__all__ = ["UInt8ResizeCrop", "build_uint8_transform"]


class UInt8ResizeCrop:
    """PIL image or uint8 tensor (3, H, W) -> uint8 tensor (3, size, size): the short side
    resized to `size` (bilinear, antialiased, uint8 throughout), then a centre crop.

    Datasets decode with PIL; ``pil_to_tensor`` keeps its uint8 pixels (torchvision.io's
    decoders are deprecated since torchvision 0.29 in favour of TorchCodec).
    """

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image) -> torch.Tensor:
        if isinstance(image, Image.Image):
            image = TF.pil_to_tensor(image.convert("RGB"))
        if min(image.shape[-2:]) != self.size:
            image = TF.resize(image, [self.size], antialias=True)
        return TF.center_crop(image, [self.size, self.size])

    def __repr__(self):
        return f"UInt8ResizeCrop(size={self.size})"


def build_uint8_transform(cfg) -> UInt8ResizeCrop:
    """The loader-side transform of the batched path: uint8 squares of INPUT.BATCHED_AUGMENTATION_SIZE
    px (INPUT.CROP_SIZE if 0)."""
    size = cfg.INPUT.BATCHED_AUGMENTATION_SIZE or cfg.INPUT.CROP_SIZE
    if size < cfg.INPUT.CROP_SIZE:
        raise ConfigError(
            f"INPUT.BATCHED_AUGMENTATION_SIZE ({size}) must be 0 or at least INPUT.CROP_SIZE "
            f"({cfg.INPUT.CROP_SIZE}): the crops are cut from these squares"
        )
    return UInt8ResizeCrop(size)
