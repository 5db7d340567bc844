import itertools
import os

import pytest
import torch
from PIL import Image

from ssl_lab.config import get_cfg
from ssl_lab.data import build_dataset, build_train_transform
from ssl_lab.data.datasets import BadImageError, DatasetNotFoundError
from ssl_lab.data.samplers import InferenceSampler, TrainingSampler
from ssl_lab.utils import comm

from resume_testing import check_two_rank_resume


def test_training_sampler_resumes_mid_epoch_exactly():
    full = list(itertools.islice(iter(TrainingSampler(10, seed=3)), 25))
    resumed = list(itertools.islice(iter(TrainingSampler(10, seed=3, start=13)), 12))
    assert resumed == full[13:]
    assert sorted(full[:10]) == list(range(10)) and full[:10] != full[10:20]  # reshuffled per epoch


def test_training_sampler_shards_the_global_stream(monkeypatch):
    stream = list(itertools.islice(iter(TrainingSampler(7, seed=1)), 14))
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    shards = []
    for rank in range(2):
        monkeypatch.setattr(comm, "get_rank", lambda r=rank: r)
        shards.append(list(itertools.islice(iter(TrainingSampler(7, seed=1, start=0)), 7)))
    assert shards[0] == stream[0::2] and shards[1] == stream[1::2]


def test_resumed_two_rank_loader_continues_the_global_stream(monkeypatch):
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    for rank in range(2):
        monkeypatch.setattr(comm, "get_rank", lambda r=rank: r)
        check_two_rank_resume(rank)


def test_inference_sampler_covers_everything_once(monkeypatch):
    monkeypatch.setattr(comm, "get_world_size", lambda: 3)
    seen = []
    for rank in range(3):
        monkeypatch.setattr(comm, "get_rank", lambda r=rank: r)
        seen += list(InferenceSampler(10))
    assert sorted(seen) == list(range(10))


@pytest.mark.parametrize("recipe,views", [("MoCoV1", 2), ("MoCoV2", 2), ("SimCLR", 2), ("BYOL", 4), ("Shapes", 2)])
def test_multiview_recipes_make_distinct_views(recipe, views):
    cfg = get_cfg()
    cfg.INPUT.AUGMENTATION, cfg.INPUT.NUM_VIEWS, cfg.INPUT.CROP_SIZE = recipe, views, 32
    image = Image.fromarray((torch.rand(48, 48, 3) * 255).byte().numpy())
    out = build_train_transform(cfg)(image)
    assert len(out) == views and all(v.shape == (3, 32, 32) for v in out)
    assert not torch.equal(out[0], out[1])


def test_missing_dataset_names_expected_path(tmp_path):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = str(tmp_path)
    for name, folder in [("imagenet_train", "imagenet/train"), ("cifar10_train", "cifar10"), ("stl10_test", "stl10")]:
        with pytest.raises(DatasetNotFoundError, match=os.path.join(str(tmp_path), folder)):
            build_dataset(cfg, name, None)
    with pytest.raises(KeyError, match="family one of"):
        build_dataset(cfg, "mnist_train", None)


def _image_folder_with_one_broken_file(root):
    for cls in ("a", "b"):
        os.makedirs(root / "train" / cls)
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 100, 0, 0)).save(root / "train" / cls / f"{i}.png")
    (root / "train" / "a" / "broken.png").write_bytes(b"not a png")


def test_undecodable_image_is_fatal_with_its_name_or_skipped(tmp_path):
    _image_folder_with_one_broken_file(tmp_path)
    cfg = get_cfg()
    cfg.DATASETS.ROOT = str(tmp_path)
    dataset = build_dataset(cfg, "imagefolder_train", None)
    broken = next(i for i, (path, _) in enumerate(dataset.samples) if path.endswith("broken.png"))
    with pytest.raises(BadImageError, match="broken.png"):
        dataset[broken]
    cfg.DATASETS.ON_BAD_IMAGE = "skip"
    dataset = build_dataset(cfg, "imagefolder_train", None)
    image, _ = dataset[broken]
    assert image.size == (8, 8) and dataset.num_skipped == 1


def test_seeded_augmentation_depends_only_on_stream_position():
    import random

    from ssl_lab.data.build import SeededAugmentedDataset

    cfg = get_cfg()
    cfg.INPUT.AUGMENTATION, cfg.INPUT.CROP_SIZE = "Shapes", 32  # RandomChoice draws from Python's random
    image = Image.fromarray((torch.rand(48, 48, 3) * 255).byte().numpy())

    class _Images:
        def __getitem__(self, i):
            return build_train_transform(cfg)(image), 0

        def __len__(self):
            return 3

    dataset = SeededAugmentedDataset(_Images(), seed=5)
    before = random.getstate()
    views_a = [dataset[(0, 7)][0] for _ in range(3)]
    random.random()
    torch.rand(1)
    views_b = dataset[(0, 7)][0]
    assert all(torch.equal(a, b) for views in views_a for a, b in zip(views, views_b))
    assert not torch.equal(dataset[(0, 8)][0][0], views_b[0])
    random.setstate(before)


def test_seeded_augmentation_is_the_transform_under_the_position_seed_and_restores_the_rngs():
    """Reference: seeding torch and Python with seed * 1_000_003 + position by hand (the formula
    that checkpoints of earlier runs were resumed with) gives the same views."""
    import random

    from ssl_lab.data.build import SeededAugmentedDataset

    cfg = get_cfg()
    cfg.INPUT.AUGMENTATION, cfg.INPUT.CROP_SIZE = "Shapes", 32  # draws from torch and from Python's random
    image = Image.fromarray((torch.rand(48, 48, 3, generator=torch.Generator().manual_seed(1)) * 255).byte().numpy())
    transform = build_train_transform(cfg)

    class _Images:
        def __getitem__(self, i):
            return transform(image)

        def __len__(self):
            return 1

    torch_state, python_state = torch.get_rng_state(), random.getstate()
    views = SeededAugmentedDataset(_Images(), seed=5)[(0, 11)]
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state
    torch.manual_seed(5 * 1_000_003 + 11)
    random.seed(5 * 1_000_003 + 11)
    expected = transform(image)
    torch.set_rng_state(torch_state)
    random.setstate(python_state)
    assert all(torch.equal(a, b) for a, b in zip(views, expected))


def test_to_normalized_tensor_matches_the_float64_formula():
    import numpy as np

    from ssl_lab.data.transforms import ToNormalizedTensor

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = (pixels.astype(np.float64) / 255 - np.array(mean)) / np.array(std)
    out = ToNormalizedTensor(mean, std)(Image.fromarray(pixels))
    assert out.dtype == torch.float32 and out.shape == (3, 5, 7) and out.is_contiguous()
    torch.testing.assert_close(out.double(), torch.from_numpy(expected).permute(2, 0, 1), atol=1e-5, rtol=0)


def test_color_jitter_is_torchvisions_under_the_same_draws():
    """The same seed gives torchvision's ColorJitter output byte for byte (order of the four ops
    and their factors drawn alike); hue 0.5 makes every shift possible."""
    import numpy as np
    from torchvision import transforms as T

    from ssl_lab.data.transforms import ColorJitter

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    for jitter in [(0.4, 0.4, 0.4, 0.1), (0.8, 0.8, 0.8, 0.5)]:
        for seed in range(25):
            torch.manual_seed(seed)
            ours = ColorJitter(*jitter)(image)
            torch.manual_seed(seed)
            assert ours.tobytes() == T.ColorJitter(*jitter)(image).tobytes(), (jitter, seed)


def test_hue_tables_are_built_with_the_pil_recipe_only():
    """Before the loader forks its workers (so that they share the 128 MB), and not for the batched
    path, which only reads the recipe's parameters."""
    from ssl_lab.data.batched_augment import build_batched_augmentation
    from ssl_lab.data.pil_hue import hue_tables

    cfg = get_cfg()
    cfg.INPUT.AUGMENTATION = "MoCoV2"
    hue_tables.cache_clear()
    build_batched_augmentation(cfg)
    assert hue_tables.cache_info().currsize == 0
    cfg.INPUT.AUGMENTATION = "LinearEval"
    build_train_transform(cfg)
    assert hue_tables.cache_info().currsize == 0
    cfg.INPUT.AUGMENTATION = "MoCoV2"
    build_train_transform(cfg)
    assert hue_tables.cache_info().currsize == 1


def test_random_grayscale_is_torchvisions_under_the_same_draws():
    import numpy as np
    from torchvision import transforms as T

    from ssl_lab.data.transforms import RandomGrayscale

    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8))
    greyed = 0
    for seed in range(20):
        torch.manual_seed(seed)
        ours, next_draw = RandomGrayscale(p=0.4)(image), torch.rand(1)
        torch.manual_seed(seed)
        assert ours.tobytes() == T.RandomGrayscale(p=0.4)(image).tobytes() and torch.equal(next_draw, torch.rand(1))
        greyed += ours.tobytes() != image.tobytes()
    assert 0 < greyed < 20


@pytest.mark.parametrize("sigma", [0.8, 1.5])
def test_pil_blur_spreads_an_impulse_by_sigma(sigma):
    """A blurred impulse is the kernel: its spread along each axis is sigma (a Gaussian's variance)."""
    import numpy as np

    from ssl_lab.data.transforms import GaussianBlur

    impulse = np.zeros((41, 41, 3), dtype=np.uint8)
    impulse[20, 20] = 255
    out = np.asarray(GaussianBlur(sigma=(sigma, sigma))(Image.fromarray(impulse)))[..., 0].astype(np.float64)
    offsets = np.arange(41) - 20.0
    variance_x = (out * offsets[None, :] ** 2).sum() / out.sum()
    variance_y = (out * offsets[:, None] ** 2).sum() / out.sum()
    assert abs(variance_x**0.5 - sigma) < 0.1 * sigma and abs(variance_y**0.5 - sigma) < 0.1 * sigma
