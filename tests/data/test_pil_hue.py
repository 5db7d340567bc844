"""The hue adjustment through lookup tables against torchvision's own, on the same inputs."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as F

from ssl_lab.data.pil_hue import adjust_hue


def _every_colour() -> Image.Image:
    """A 4096 x 4096 RGB image holding each of the 2^24 colours once."""
    return Image.frombytes("RGB", (4096, 4096), np.arange(1 << 24, dtype="<u4"), "raw", "RGBX")


def test_adjust_hue_is_torchvisions_on_every_colour():
    """-0.1, MoCo v2's bound: int(-25.5) truncates to -25 (rounding would give -26)."""
    image = _every_colour()
    assert adjust_hue(image, -0.1).tobytes() == F.adjust_hue(image, -0.1).tobytes()


def test_adjust_hue_is_torchvisions_for_every_shift():
    """257 factors from -0.5 to 0.5 reach every shift of H that torchvision makes, on random colours."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    for hue_factor in np.linspace(-0.5, 0.5, 257).tolist():
        assert adjust_hue(image, hue_factor).tobytes() == F.adjust_hue(image, hue_factor).tobytes(), hue_factor


def test_adjust_hue_leaves_other_inputs_to_torchvision():
    grey = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8))
    assert adjust_hue(grey, 0.3).tobytes() == grey.tobytes()  # no hue in a grey image
    tensor = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(adjust_hue(tensor, 0.2), F.adjust_hue(tensor, 0.2), rtol=0, atol=0)
    with pytest.raises(ValueError, match="hue_factor"):
        adjust_hue(Image.new("RGB", (4, 4)), 0.6)
