"""INPUT.NORMALIZE_ON_DEVICE: uint8 views from the workers, normalized by the trainer."""

import numpy as np
import torch
from PIL import Image

from ssl_lab.config import get_cfg
from ssl_lab.data import build_train_transform, build_view_normalization
from ssl_lab.engine.train_loop import SimpleTrainer

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _views(on_device: bool, images, seed: int = 4) -> list:
    """The MoCo v2 views of `images`, stacked per view: [V x (N, 3, 24, 24)]."""
    cfg = get_cfg()
    cfg.INPUT.CROP_SIZE, cfg.INPUT.NORMALIZE_ON_DEVICE = 24, on_device
    transform = build_train_transform(cfg)
    torch.manual_seed(seed)
    per_image = [transform(image) for image in images]
    return [torch.stack(view) for view in zip(*per_image)]


def _images(n: int = 3) -> list:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)) for _ in range(n)]


def test_device_normalization_gives_the_workers_values():
    """Reference: the float64 formula on the shipped pixels, and the views the workers normalize
    themselves under the same draws, value for value."""
    shipped = _views(True, _images())
    assert all(v.dtype == torch.uint8 and v.shape == (3, 3, 24, 24) for v in shipped)
    normalized = build_view_normalization(get_cfg())(shipped)
    for pixels, view, worker_view in zip(shipped, normalized, _views(False, _images())):
        expected = (pixels.double() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
        assert view.dtype == torch.float32 and view.is_contiguous()
        torch.testing.assert_close(view.double(), expected, atol=1e-5, rtol=0)
        assert torch.equal(view, worker_view)


def test_float_views_pass_unchanged():
    """A recipe that does not end in ssl_lab's normalization ships floats; they are used as they are."""
    floats = torch.rand(2, 3, 4, 4)
    assert build_view_normalization(get_cfg())([floats])[0] is floats


def test_trainer_normalizes_the_loaders_uint8_views():
    shipped = _views(True, _images(2))
    model = torch.nn.Linear(1, 1)
    step = SimpleTrainer(model, [(shipped, torch.zeros(2))], None, batch_augmentation=build_view_normalization(get_cfg()))
    views = step._load_batch()[0]["views"]
    assert all(torch.equal(a, b) for a, b in zip(views, _views(False, _images(2))))
