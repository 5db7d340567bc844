"""Brightness and contrast through lookup tables against Pillow's blend and torchvision's ops."""

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F

from ssl_lab.data.pil_enhance import _blend_table, adjust_brightness, adjust_contrast

# the MoCo v2 / SimCLR / BYOL ranges' ends, identity and zero, extrapolation far out, and random draws
FACTORS = [0.0, 1.0, 0.6, 1.4, 0.2, 1.8, 0.5, 1.5, -0.7, 3.3] + np.random.default_rng(0).uniform(0, 2, 22).tolist()


def test_table_is_pillows_blend_for_every_grey_and_byte():
    """Image.blend(constant grey d, image, factor) on an image holding every byte, each d."""
    every_byte = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3))
    for degenerate in range(256):
        grey = Image.new("RGB", every_byte.size, (degenerate,) * 3)
        for factor in FACTORS:
            expected = Image.blend(grey, every_byte, factor).tobytes()
            assert every_byte.point(_blend_table(degenerate, factor)).tobytes() == expected, (degenerate, factor)


def test_adjustments_are_torchvisions_on_photos():
    """The contrast's grey is each image's own mean luma, so images of varied means and sizes."""
    rng = np.random.default_rng(1)
    for k in range(12):
        height, width = rng.integers(5, 80, 2)
        low, high = sorted(rng.integers(0, 256, 2))
        image = Image.fromarray(rng.integers(low, high + 1, (height, width, 3), dtype=np.uint8))
        for factor in FACTORS[::3]:
            assert adjust_brightness(image, factor).tobytes() == F.adjust_brightness(image, factor).tobytes(), (k, factor)
            assert adjust_contrast(image, factor).tobytes() == F.adjust_contrast(image, factor).tobytes(), (k, factor)


def test_other_inputs_go_to_torchvision():
    grey = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8))
    assert adjust_contrast(grey, 1.3).tobytes() == F.adjust_contrast(grey, 1.3).tobytes()
    tensor = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(adjust_brightness(tensor, 1.2), F.adjust_brightness(tensor, 1.2), rtol=0, atol=0)
