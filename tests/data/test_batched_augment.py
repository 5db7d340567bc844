"""The batched (on-device) augmentation path on CPU: shapes, randomness, each op against the PIL path."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from ssl_lab.config import get_cfg
from ssl_lab.data import build_dataset, build_train_loader
from ssl_lab.data.batched_augment import (
    BatchedColorJitter,
    BatchedGaussianBlur,
    BatchedGrayscale,
    BatchedHorizontalFlip,
    BatchedMultiView,
    BatchedNormalize,
    BatchedRandomResizedCrop,
    BatchedRightAngleRotation,
    BatchedSolarize,
    UInt8ResizeCrop,
    batched_view,
    build_batched_augmentation,
    build_uint8_transform,
)

from conftest import REPO_ROOT, tiny_overrides

RECIPES = ["MoCoV1", "MoCoV2", "SimCLR", "BYOL", "Shapes", "LinearEval"]


def _cfg(recipe="MoCoV2", *extra):
    """The Shapes MoCo v2 config with the augmentation `recipe`."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"))
    cfg.merge_from_list(["INPUT.AUGMENTATION", recipe, *extra])
    return cfg


def _images(n=8, h=32, w=32, seed=0, low=0, high=256):
    return torch.randint(low, high, (n, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).numpy())


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _pil_batch(transform, images):
    """The PIL path on each image of a uint8 batch, stacked: (N, 3, S, S) float."""
    return torch.stack([transform(_pil(im)) for im in images])


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_give_views_of_the_crop_size(recipe):
    cfg = _cfg(recipe, "INPUT.CROP_SIZE", "24", "INPUT.NUM_VIEWS", "3")
    views = build_batched_augmentation(cfg)(_images(h=40, w=48), _gen())
    assert len(views) == 3
    for v in views:
        assert v.dtype == torch.float32 and v.shape == (8, 3, 24, 24) and torch.isfinite(v).all()


def test_views_cycle_through_the_recipe_and_byol_views_differ():
    aug = build_batched_augmentation(_cfg("BYOL"))
    assert len(aug.views) == 2
    assert any(isinstance(op, BatchedSolarize) for op in aug.views[1])
    assert not any(isinstance(op, BatchedSolarize) for op in aug.views[0])
    blur_p = [next(op.p for op in view if isinstance(op, BatchedGaussianBlur)) for view in aug.views]
    assert blur_p == [1.0, 0.1]


def test_rejects_float_input_and_unknown_transforms():
    aug = build_batched_augmentation(_cfg())
    with pytest.raises(ValueError, match="uint8"):
        aug(_images().float())
    with pytest.raises(ValueError, match="RandomRotation"):
        batched_view(T.Compose([T.RandomResizedCrop(8), T.RandomRotation(10)]))
    with pytest.raises(ValueError, match="start with RandomResizedCrop"):
        batched_view(T.Compose([T.RandomHorizontalFlip(), T.RandomResizedCrop(8)]))


def test_seeded_generator_is_deterministic():
    aug = build_batched_augmentation(_cfg("SimCLR"))
    images = _images()
    first, again, other = aug(images, _gen(1)), aug(images, _gen(1)), aug(images, _gen(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # two views of one image differ


def test_parameters_differ_per_sample():
    aug = build_batched_augmentation(_cfg("SimCLR"))
    same_image = _images(n=1).expand(16, -1, -1, -1).contiguous()
    view = aug(same_image, _gen())[0]
    assert len({tuple(v.flatten()[:64].tolist()) for v in view}) == 16
    boxes = BatchedRandomResizedCrop(32).sample_boxes(16, 32, 32, _gen())
    assert len({tuple(b.tolist()) for b in boxes}) == 16


@pytest.mark.parametrize("height,width", [(32, 32), (20, 64), (64, 20)])
def test_crops_lie_inside_the_image_with_the_requested_area(height, width):
    crop = BatchedRandomResizedCrop(16, scale=(0.2, 0.6))
    boxes = crop.sample_boxes(4000, height, width, _gen())
    x0, y0, x1, y1 = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= width).all() and (y1 <= height).all()
    assert (x1 > x0).all() and (y1 > y0).all()
    area = (x1 - x0) * (y1 - y0) / (height * width)
    # Rounding of w, h moves the fraction a little past the bounds; the fallback (rare here) is larger.
    assert ((area > 0.15) & (area < 0.7)).float().mean() > 0.98


def test_crop_area_distribution_matches_torchvision():
    crop = T.RandomResizedCrop(16, scale=(0.08, 1.0))
    torch.manual_seed(0)
    reference = torch.tensor(
        [(lambda p: p[2] * p[3])(crop.get_params(torch.empty(3, 24, 40), crop.scale, crop.ratio)) for _ in range(4000)], dtype=torch.float
    )
    boxes = BatchedRandomResizedCrop(16, crop.scale, crop.ratio).sample_boxes(4000, 24, 40, _gen())
    ours = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert abs(ours.mean() - reference.mean()) / reference.mean() < 0.05
    assert abs(ours.std() - reference.std()) / reference.std() < 0.1


def test_identity_recipe_matches_the_pil_path():
    recipe = T.Compose(
        [
            T.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
            T.ToTensor(),
            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    images = _images()
    ours = BatchedMultiView([batched_view(recipe)], 1)(images, _gen())[0]
    torch.testing.assert_close(ours, _pil_batch(recipe, images), atol=1e-5, rtol=0)


def test_downscaling_crop_is_close_to_pil_bilinear():
    images = T.functional.gaussian_blur(_images(h=64, w=64).float(), 5, 1.5).round().to(torch.uint8)  # smooth
    recipe = T.Compose([T.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0)), T.ToTensor()])
    ours = BatchedMultiView([batched_view(recipe)], 1)(images, _gen())[0]
    assert (ours - _pil_batch(recipe, images)).abs().mean() < 0.01


def test_flip_flips():
    x = torch.rand(6, 3, 5, 7)
    torch.testing.assert_close(BatchedHorizontalFlip(1.0)(x), x.flip(-1))
    torch.testing.assert_close(BatchedHorizontalFlip(0.0)(x), x)
    x = torch.rand(64, 3, 5, 7)
    out = BatchedHorizontalFlip(0.5)(x, _gen())
    is_flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    is_kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    assert (is_flipped ^ is_kept).all() and 0 < is_flipped.sum() < 64


def test_right_angle_rotations_match_pil_and_are_uniform():
    images = _images(h=16, w=16)
    for angle in (90, 180, 270):
        ours = BatchedRightAngleRotation([angle])(images.float() / 255, _gen())
        pil = _pil_batch(T.Compose([T.RandomRotation((angle, angle)), T.ToTensor()]), images)
        torch.testing.assert_close(ours, pil, atol=1e-6, rtol=0)
    shapes_recipe = build_batched_augmentation(_cfg("Shapes")).views[0]
    rotation = next(op for op in shapes_recipe if isinstance(op, BatchedRightAngleRotation))
    assert rotation.angles == (0, 90, 180, 270)
    x = torch.arange(4.0).view(1, 1, 2, 2).expand(4000, 3, 2, 2)
    counts = torch.stack([(rotation(x, _gen()) == torch.rot90(x, k, (-2, -1))).flatten(1).all(1) for k in range(4)])
    assert (counts.sum(0) == 1).all() and ((counts.float().mean(1) - 0.25).abs() < 0.03).all()
    with pytest.raises(ValueError, match="square"):
        rotation(torch.rand(2, 3, 4, 6))


def test_grayscale_gives_equal_channels_matching_pil():
    images = _images()
    out = BatchedGrayscale(1.0)(images.float() / 255)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    pil = _pil_batch(T.Compose([T.Grayscale(3), T.ToTensor()]), images)
    torch.testing.assert_close(out, pil, atol=1 / 255 + 1e-6, rtol=0)
    gray = BatchedGrayscale(0.2)(torch.rand(4000, 3, 2, 2), _gen())
    fraction = (gray[:, 0] == gray[:, 1]).all(-1).all(-1).float().mean()
    assert abs(fraction - 0.2) < 0.03


def test_fixed_color_jitter_matches_pil():
    images = _images(low=80, high=150)  # mid-range: no clipping, so the order of the adjustments does not matter
    factors = dict(brightness=(1.2, 1.2), contrast=(0.8, 0.8), saturation=(1.3, 1.3))
    ours = BatchedColorJitter(**factors)(images.float() / 255, _gen())
    pil = _pil_batch(T.Compose([T.ColorJitter(**factors), T.ToTensor()]), images)
    torch.testing.assert_close(ours, pil, atol=4 / 255, rtol=0)  # PIL rounds to uint8 after each step
    hue_ours = BatchedColorJitter(hue=(0.2, 0.2))(images.float() / 255, _gen())
    hue_pil = _pil_batch(T.Compose([T.ColorJitter(hue=(0.2, 0.2)), T.ToTensor()]), images)
    assert (hue_ours - hue_pil).abs().mean() < 0.01  # PIL quantizes the hue to 256 steps
    round_trip = BatchedColorJitter(hue=(0.0, 0.0))(images.float() / 255, _gen())
    torch.testing.assert_close(round_trip, images.float() / 255, atol=1e-6, rtol=0)


def test_hue_shift_matches_torchvision_float_hsv():
    # torchvision's tensor adjust_hue (float RGB -> HSV -> RGB) as the reference, on random colours
    # plus the tie cases: gray pixels and two equal maximal channels (red-green, green-blue, red-blue).
    x = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[0] = x[0, :1]
    x[1, 1] = x[1, 0]
    x[2, 2] = x[2, 1]
    x[3, 2] = x[3, 0]
    for shift in (-0.5, -0.23, 0.0, 0.1, 0.37, 0.5):
        ours = BatchedColorJitter(hue=(shift, shift))(x, _gen())
        reference = torch.stack([T.functional.adjust_hue(image, shift) for image in x])
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_jitter_probability_leaves_other_samples_untouched():
    x = torch.rand(2000, 3, 2, 2) * 0.5 + 0.25
    out = BatchedColorJitter((0.5, 0.5), (0.5, 0.5), (0.5, 0.5), (0.1, 0.1), p=0.8)(x, _gen())
    untouched = (out == x).flatten(1).all(1).float().mean()
    assert abs(untouched - 0.2) < 0.03


def test_blur_matches_torchvision_with_a_fixed_sigma():
    images = _images()
    ours = BatchedGaussianBlur(5, sigma=(1.3, 1.3))(images.float() / 255, _gen())
    reference = T.functional.gaussian_blur(images.float() / 255, [5, 5], [1.3, 1.3])
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    pil = _pil_batch(T.Compose([T.GaussianBlur(5, sigma=(1.3, 1.3)), T.ToTensor()]), images)
    torch.testing.assert_close(ours, pil, atol=1 / 255 + 1e-6, rtol=0)
    untouched = BatchedGaussianBlur(5, p=0.0)(images.float() / 255, _gen())
    torch.testing.assert_close(untouched, images.float() / 255, atol=1e-6, rtol=0)


def test_blur_sigma_differs_per_sample():
    same = torch.rand(1, 3, 16, 16).expand(8, -1, -1, -1)
    out = BatchedGaussianBlur(7, sigma=(0.1, 2.0))(same, _gen())
    assert len({round(float(o.std()), 6) for o in out}) == 8


def test_solarize_matches_pil():
    images = _images()
    ours = BatchedSolarize(128 / 255, 1.0)(images.float() / 255)
    pil = _pil_batch(T.Compose([T.RandomSolarize(128, p=1.0), T.ToTensor()]), images)
    torch.testing.assert_close(ours, pil, atol=1e-6, rtol=0)


def test_normalization_statistics():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = torch.rand(16, 3, 8, 8)
    out = BatchedNormalize(mean, std)(x)
    torch.testing.assert_close(out, T.Normalize(mean, std)(x))
    constant = torch.tensor(mean).view(1, 3, 1, 1).expand(4, 3, 8, 8)
    torch.testing.assert_close(BatchedNormalize(mean, std)(constant), torch.zeros(4, 3, 8, 8), atol=1e-6, rtol=0)
    views = build_batched_augmentation(_cfg("MoCoV2", "INPUT.CROP_SIZE", "16"))(_images(n=64), _gen())
    per_channel = views[0].transpose(0, 1).flatten(1)
    # uniform noise (mean 0.5, std 0.29) after jitter: normalized means near (0.5 - mean) / std, spread near 1
    assert ((per_channel.mean(1) - (0.5 - torch.tensor(mean)) / torch.tensor(std)).abs() < 0.5).all()
    assert ((per_channel.std(1) > 0.3) & (per_channel.std(1) < 2.0)).all()


def test_uint8_resize_crop():
    rect = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    out = UInt8ResizeCrop(20)(rect)
    assert out.dtype == torch.uint8 and out.shape == (3, 20, 20)
    tensor = torch.from_numpy(np.array(rect)).permute(2, 0, 1)
    assert torch.equal(UInt8ResizeCrop(30)(tensor), tensor[:, :, 10:40])  # no resize, centre crop only


def test_uint8_loader_feeds_the_batched_path(shapes_root, tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs/Shapes/byol_r18.yaml"))
    cfg.merge_from_list(tiny_overrides(shapes_root, str(tmp_path)))
    dataset = build_dataset(cfg, "shapes_train", build_uint8_transform(cfg))
    images, labels = next(iter(build_train_loader(cfg, dataset)))
    assert images.dtype == torch.uint8 and images.shape == (16, 3, 32, 32) and labels.shape == (16,)
    views = build_batched_augmentation(cfg)(images, _gen())
    assert [v.shape for v in views] == [(16, 3, 32, 32)] * 2


@pytest.mark.slow
def test_trainer_makes_the_views_on_the_device(tiny_cfg):
    from ssl_lab.engine import DefaultTrainer

    cfg = tiny_cfg("configs/Shapes/byol_r18.yaml", "INPUT.BATCHED_AUGMENTATION", "True", "SOLVER.MAX_ITER", "2")
    trainer = DefaultTrainer(cfg)
    trainer.train()
    assert trainer.train_dataset[0][0].dtype == torch.uint8
    step = trainer._trainer
    images, labels = next(iter(build_train_loader(trainer.cfg, trainer.train_dataset)))
    views = []
    for iteration in (1, 1, 2):  # the views depend on the iteration only: a resumed run sees the same ones
        step.iter, step._data_iter = iteration, iter([(images, labels)])
        views.append(step._load_batch()[0]["views"])
    assert [v.shape for v in views[0]] == [(16, 3, 32, 32)] * 2
    assert torch.equal(views[0][0], views[1][0]) and not torch.equal(views[0][0], views[2][0])


def test_loader_square_is_sized_by_its_own_key():
    cfg = _cfg("MoCoV2", "INPUT.CROP_SIZE", "32", "INPUT.TEST_RESIZE", "40")
    rect = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    assert build_uint8_transform(cfg)(rect).shape == (3, 32, 32)  # 0: the crop size, not TEST_RESIZE
    cfg.INPUT.BATCHED_AUGMENTATION_SIZE = 48
    assert build_uint8_transform(cfg)(rect).shape == (3, 48, 48)
    cfg.INPUT.BATCHED_AUGMENTATION_SIZE = 16
    with pytest.raises(ValueError, match="BATCHED_AUGMENTATION_SIZE"):
        build_uint8_transform(cfg)


def test_pil_blur_translates_to_a_batched_gaussian_of_the_same_sigma():
    from ssl_lab.data.transforms import GaussianBlur, ToNormalizedTensor

    images = T.functional.gaussian_blur(_images(n=4).float(), 5, 1.5).round().to(torch.uint8)  # smooth, like photos
    for sigma in (0.6, 1.5):
        recipe = T.Compose(
            [
                T.RandomResizedCrop(32, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
                GaussianBlur((sigma, sigma)),
                ToNormalizedTensor((0, 0, 0), (1, 1, 1)),
            ]
        )
        ours = BatchedMultiView([batched_view(recipe)], 1)(images, _gen())[0]
        # the float64 Gaussian of that sigma (+-3 sigma, reflected borders), the independent reference
        reference = T.functional.gaussian_blur(images.double() / 255, [2 * int(3 * sigma + 1) + 1] * 2, [sigma] * 2)
        torch.testing.assert_close(ours.double(), reference, atol=1e-5, rtol=0)
        pil = _pil_batch(recipe, images)  # PIL approximates the Gaussian with box filters, in uint8
        assert (ours - pil)[..., 4:-4, 4:-4].abs().mean() < 1 / 255
