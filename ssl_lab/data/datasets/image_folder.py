"""ImageFolder layouts (ImageNet and any class-per-folder tree), with a policy for bad images."""
import logging
import os

from PIL import Image, UnidentifiedImageError
from torchvision.datasets import ImageFolder

from ssl_lab.utils.errors import UserError

from .build import DATASET_REGISTRY, datasets_root, require_path

logger = logging.getLogger(__name__)


class BadImageError(UserError, RuntimeError):
    """An image file that cannot be decoded."""


def load_rgb(path: str) -> Image.Image:
    """Decode `path` as RGB; raise BadImageError naming the file if it cannot be read."""
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise BadImageError(f"Cannot decode image '{path}': {err}") from None


class RobustImageFolder(ImageFolder):
    """ImageFolder whose undecodable files either raise (policy "error") or are skipped
    (policy "skip": the next decodable sample is returned and `num_skipped` counts them)."""

    def __init__(self, root: str, transform=None, on_bad_image: str = "error"):
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"DATASETS.ON_BAD_IMAGE must be 'error' or 'skip', got '{on_bad_image}'")
        super().__init__(root, transform=transform, loader=load_rgb)
        self.on_bad_image = on_bad_image
        self.num_skipped = 0
        self.labels = list(self.targets)

    def __getitem__(self, index: int):
        for attempt in range(len(self)):
            try:
                return super().__getitem__((index + attempt) % len(self))
            except BadImageError as err:
                if self.on_bad_image == "error":
                    raise
                self.num_skipped += 1
                logger.warning(f"Skipping undecodable image ({self.num_skipped} so far in this worker): {err}")
        raise BadImageError(f"No decodable image in '{self.root}'")


@DATASET_REGISTRY.register()
def imagenet(cfg, split: str, transform):
    """$SSL_LAB_DATASETS/imagenet/{train,val}/<wnid>/*.JPEG."""
    path = require_path(os.path.join(datasets_root(cfg), "imagenet", split), f"imagenet_{split}")
    return RobustImageFolder(path, transform, cfg.DATASETS.ON_BAD_IMAGE)


@DATASET_REGISTRY.register()
def imagefolder(cfg, split: str, transform):
    """Any class-per-folder tree at <DATASETS.ROOT>/<split> (e.g. imagefolder_train)."""
    path = require_path(os.path.join(datasets_root(cfg), split), f"imagefolder_{split}")
    return RobustImageFolder(path, transform, cfg.DATASETS.ON_BAD_IMAGE)
