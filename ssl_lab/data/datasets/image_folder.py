"""ImageFolder layouts (ImageNet and any class-per-folder tree), with a policy for bad images."""
import logging
import math
import os

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile
from torchvision.datasets import ImageFolder

from ssl_lab.config import ConfigError
from ssl_lab.utils.download import cache_dir
from ssl_lab.utils.errors import UserError

from .build import DATASET_REGISTRY, datasets_root, require_path
from .file_index import FileIndex

logger = logging.getLogger(__name__)


class BadImageError(UserError, RuntimeError):
    """An image file that cannot be decoded."""


_16_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb(image: Image.Image, path: str = "image") -> Image.Image:
    """8-bit RGB of any PIL image: 16-bit grayscale is scaled (not clipped) to 8 bits,
    palette images with transparency go through RGBA; float images are refused by name."""
    if image.mode in _16_BIT_MODES:
        values = np.asarray(image, dtype=np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise BadImageError(f"Image '{path}' has {image.mode} pixels outside 0..65535; convert it to 8-bit RGB")
        image = Image.fromarray((values * 255 // 65535).astype(np.uint8), mode="L")
    elif image.mode == "F":
        raise BadImageError(f"Image '{path}' has floating-point pixels (mode F); convert it to 8-bit RGB")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "RGB":
        image.load()  # decoded in place: convert would decode, then copy
        return image
    return image.convert("RGB")


def open_image(path: str) -> Image.Image:
    """A JPEG opened but not decoded (its header read: size and mode are known), any other
    image decoded to 8-bit RGB; raise BadImageError naming the file if it cannot be read."""
    try:
        image = Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise BadImageError(f"Cannot decode image '{path}': {err}") from None
    if isinstance(image, JpegImageFile):
        return image
    image.close()
    return load_rgb(path)


def load_rgb(path: str) -> Image.Image:
    """Decode `path` as 8-bit RGB; raise BadImageError naming the file if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return to_rgb(Image.open(f), path)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise BadImageError(f"Cannot decode image '{path}': {err}") from None


class RobustImageFolder(ImageFolder):
    """ImageFolder whose undecodable files either raise (policy "error") or are skipped
    (policy "skip": the next decodable sample is returned and `num_skipped` counts them; the
    first is logged with its error, then the count at 10, 100, ...).

    With `index_dir`, the listing of the tree is read from a :class:`FileIndex` cached there
    (built on first use, rebuilt when stale), and `file_sizes` holds each file's size in bytes.
    A transform with ``takes_undecoded = True`` (ssl_lab.data.decode) gets JPEGs opened but
    not decoded, and decodes them itself (at a reduced size, or on the device).

    Images with a side shorter than `min_size` (the crop) are used (the crop upsamples
    them) and counted in `num_small`; the first one is logged with its size, then the
    count at 10, 100, 1000, ... so that a folder of thumbnails does not flood the log.
    """

    def __init__(self, root: str, transform=None, on_bad_image: str = "error", min_size: int = 0,
                 index_dir: str = ""):
        if on_bad_image not in ("error", "skip"):
            raise ConfigError(f"DATASETS.ON_BAD_IMAGE must be 'error' or 'skip', got '{on_bad_image}'")
        self.index_dir = index_dir
        self.file_sizes = None
        super().__init__(root, transform=transform, loader=self._load)
        self.on_bad_image = on_bad_image
        self.min_size = min_size
        self.num_skipped = 0
        self.num_small = 0
        self.labels = list(self.targets)

    def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        if not self.index_dir or is_valid_file is not None or allow_empty:
            return super().make_dataset(directory, class_to_idx, extensions, is_valid_file, allow_empty)
        index = FileIndex.cached(directory, class_to_idx, extensions, self.index_dir)
        self.file_sizes = index.sizes
        return index.samples()

    def _load(self, path: str) -> Image.Image:
        image = open_image(path) if getattr(self.transform, "takes_undecoded", False) else load_rgb(path)
        if min(image.size) < self.min_size:
            self.num_small += 1
            if self.num_small == 1:
                logger.warning(f"Image '{path}' is {image.size[0]}x{image.size[1]}, smaller than the "
                               f"{self.min_size}-pixel crop (INPUT.CROP_SIZE); such images are upsampled")
            elif math.log10(self.num_small).is_integer():
                logger.warning(f"{self.num_small} images so far (in this loader process) are smaller than the "
                               f"{self.min_size}-pixel crop")
        return image

    def __getitem__(self, index: int):
        for attempt in range(len(self)):
            try:
                return super().__getitem__((index + attempt) % len(self))
            except BadImageError as err:
                if self.on_bad_image == "error":
                    raise
                self.num_skipped += 1
                if self.num_skipped == 1:
                    logger.warning(f"Skipping undecodable image (DATASETS.ON_BAD_IMAGE 'skip'): {err}")
                elif math.log10(self.num_skipped).is_integer():
                    logger.warning(f"{self.num_skipped} undecodable images skipped so far (in this loader process)")
        raise BadImageError(f"No decodable image in '{self.root}' ({len(self)} files tried)")


@DATASET_REGISTRY.register()
def imagenet(cfg, split: str, transform):
    """$SSL_LAB_DATASETS/imagenet/{train,val}/<wnid>/*.JPEG."""
    path = require_path(os.path.join(datasets_root(cfg), "imagenet", split), f"imagenet_{split}")
    return RobustImageFolder(path, transform, cfg.DATASETS.ON_BAD_IMAGE, cfg.INPUT.CROP_SIZE, file_index_dir(cfg))


@DATASET_REGISTRY.register()
def imagefolder(cfg, split: str, transform):
    """Any class-per-folder tree at <DATASETS.ROOT>/<split> (e.g. imagefolder_train)."""
    path = require_path(os.path.join(datasets_root(cfg), split), f"imagefolder_{split}")
    return RobustImageFolder(path, transform, cfg.DATASETS.ON_BAD_IMAGE, cfg.INPUT.CROP_SIZE, file_index_dir(cfg))


def file_index_dir(cfg) -> str:
    """Where the file indices live with DATASETS.FILE_INDEX ($SSL_LAB_CACHE or ~/.cache/ssl_lab),
    "" without."""
    return cache_dir() if cfg.DATASETS.FILE_INDEX else ""
