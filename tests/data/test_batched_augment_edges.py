"""Each batched augmentation op alone against torchvision, at the ends of its parameter ranges, on
images whose channels differ (R, G and B with different means), and the crop boxes' placement."""

import math

import pytest
import torch
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from ssl_lab.config import get_cfg
from ssl_lab.data.batched_augment import BatchedColorJitter, BatchedGaussianBlur, BatchedRandomResizedCrop, BatchedSolarize, batched_view
from ssl_lab.data.transforms import TRANSFORM_REGISTRY, GaussianBlur


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _colored(n=6, size=12):
    """uint8 images whose channel means differ (R ~ 200, G ~ 50, B ~ 120), with texture."""
    noise = torch.randint(-40, 41, (n, 3, size, size), generator=_gen(1))
    return (torch.tensor([200, 50, 120]).view(1, 3, 1, 1) + noise).clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize(
    "name,factor",
    [
        ("brightness", 0.6),
        ("brightness", 1.4),
        ("contrast", 0.6),
        ("contrast", 1.4),
        ("saturation", 0.6),
        ("saturation", 1.4),
        ("hue", -0.1),
        ("hue", 0.1),
    ],
)
def test_each_color_jitter_at_the_ends_of_moco_v2s_ranges_matches_torchvision(name, factor):
    """MoCo v2's ColorJitter(0.4, 0.4, 0.4, 0.1): factors in [0.6, 1.4], hue in [-0.1, 0.1]."""
    x = _colored().float() / 255
    ours = BatchedColorJitter(**{name: (factor, factor)})(x, _gen())
    adjust = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast, "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}[
        name
    ]
    reference = torch.stack([adjust(image, factor) for image in x])
    # torchvision's float luma weighs red 0.2989 (PIL and ours: 0.299): at most 1e-4 x (1 - factor)
    torch.testing.assert_close(ours, reference, atol=2e-4, rtol=0)


def _recipe(name):
    cfg = get_cfg()
    cfg.INPUT.CROP_SIZE = 12
    return TRANSFORM_REGISTRY.get(name)(cfg)


def _only(ops, kind):
    found = [op for op in ops if isinstance(op, kind)]
    assert len(found) == 1
    return found[0]


def test_byol_solarize_translated_from_the_pil_recipe_solarizes_like_it():
    """BYOL's second view solarizes (threshold 128 of uint8); the batched op works on [0, 1] images."""
    pil_view = _recipe("BYOL")[1]
    pil_solarize = _only(pil_view.transforms, T.RandomSolarize)
    ours = _only(batched_view(pil_view), BatchedSolarize)
    ours.p = pil_solarize.p = 1.0
    images = _colored()
    reference = torch.stack([TF.to_tensor(pil_solarize(TF.to_pil_image(image))) for image in images])
    torch.testing.assert_close(ours(images.float() / 255, _gen()), reference, atol=1e-6, rtol=0)
    assert not torch.equal(reference, images.float() / 255)  # some pixels were solarized


@pytest.mark.parametrize("recipe", ["MoCoV2", "BYOL"])
def test_blur_at_both_ends_of_the_recipes_sigma_range_is_the_full_gaussian(recipe):
    """The recipe's blur draws sigma in [lo, hi]; its batched kernel must hold +-3 sigma of either end."""
    pil_view = _recipe(recipe)[0]
    pil_blur = next(
        t
        for apply in pil_view.transforms
        if isinstance(apply, T.RandomApply)
        for t in apply.transforms
        if isinstance(t, (GaussianBlur, T.GaussianBlur))
    )
    ours = _only(batched_view(pil_view), BatchedGaussianBlur)
    x = torch.rand(2, 3, 40, 40, generator=_gen(2), dtype=torch.float64)
    for sigma in pil_blur.sigma:
        ours.sigma, ours.p = (sigma, sigma), 1.0
        size = 2 * math.ceil(3 * sigma) + 1
        reference = TF.gaussian_blur(x, [size, size], [sigma, sigma])  # float64 Gaussian, reflected borders
        torch.testing.assert_close(ours(x, _gen()), reference, atol=1e-4, rtol=0)


def test_crop_boxes_start_anywhere_the_crop_fits_including_the_last_row_and_column():
    height, width, n = 6, 9, 30000
    crop = BatchedRandomResizedCrop(4, scale=(4 / 54, 4 / 54), ratio=(1.0, 1.0))  # always a 2 x 2 box
    x0, y0, x1, y1 = crop.sample_boxes(n, height, width, _gen()).unbind(1)
    assert torch.equal(x1 - x0, torch.full((n,), 2.0)) and torch.equal(y1 - y0, torch.full((n,), 2.0))
    # torchvision: top ~ randint(0, H - h + 1), left ~ randint(0, W - w + 1): uniform over every fit
    for start, positions in ((x0, width - 1), (y0, height - 1)):
        counts = torch.bincount(start.long(), minlength=positions)
        assert len(counts) == positions  # none starts past the last position where the box fits
        expected = n / positions
        assert ((counts - expected).abs() < 5 * math.sqrt(expected)).all(), counts  # 5 sigma of a binomial
    corners = torch.stack([x0, y0], 1)
    assert (corners == torch.tensor([width - 2.0, height - 2.0])).all(1).any()  # the bottom-right corner is reached
