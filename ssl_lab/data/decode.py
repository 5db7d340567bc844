"""Decoding for the training loaders.

- Reduced-size decode: libjpeg scales a JPEG by 1/2, 1/4 or 1/8 while decoding (DCT scaling,
  through PIL's ``Image.draft``), which costs a fraction of a full decode. It is used only where
  every crop that will be cut from the image still has at least the output size on each side
  after the reduction, so each crop is still a downsample of the same box of the picture.
  The datasets hand such transforms (``takes_undecoded = True``) JPEGs opened but not decoded.
- Device decode: the loader ships encoded JPEG bytes (:class:`EncodedImage`); a batch of them
  (:class:`EncodedBatch`) is decoded on the model's device (nvJPEG through
  ``torchvision.io.decode_jpeg``) and cut to uint8 squares there.
"""

import math
import warnings

import torch
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile
from torchvision import transforms as T
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from .batched_augment import UInt8ResizeCrop
from .datasets.image_folder import BadImageError, open_image, to_rgb
from .transforms import MultiViewTransform

__all__ = [
    "open_image",
    "is_undecoded_jpeg",
    "dct_reduction",
    "decode_reduced",
    "reduced_resized_crop",
    "ReducedDecode",
    "ReducedDecodeMultiView",
    "EncodedImage",
    "EncodedBatch",
    "ShipEncoded",
    "collate_encoded",
    "build_decoding",
]

DCT_REDUCTIONS = (8, 4, 2, 1)  # the scalings PIL's draft asks libjpeg for


def is_undecoded_jpeg(image) -> bool:
    """Whether `image` is a JPEG whose pixels have not been decoded yet."""
    return isinstance(image, JpegImageFile) and bool(image.tile)


def dct_reduction(side: float, size: int) -> int:
    """The largest DCT reduction r (8, 4, 2 or 1) with side / r >= size."""
    return next(r for r in DCT_REDUCTIONS if side >= size * r or r == 1)


def decode_reduced(image: Image.Image, reduction: int = 1):
    """(RGB image, the reduction applied): an undecoded JPEG decoded at 1/reduction of its size
    (libjpeg rounds each side up), any other image converted to RGB at reduction 1."""
    name = getattr(image, "filename", "") or "image"
    applied = 1
    try:
        if is_undecoded_jpeg(image) and reduction > 1:
            width = image.size[0]
            drafted = image.draft("RGB", (width // reduction, image.size[1] // reduction))
            applied = round(width / drafted[1][2]) if drafted else 1  # None: PIL declined (several tiles)
        return to_rgb(image, name), applied
    except (OSError, ValueError) as err:
        raise BadImageError(f"Cannot decode image '{name}': {err}") from None


def reduced_resized_crop(image: Image.Image, reduction: int, box, size) -> Image.Image:
    """The crop `box` = (top, left, height, width), in pixels of the full-size image, of `image`
    decoded at 1/reduction of that size, resized to `size` = (height, width) (PIL's bilinear
    filter, antialiased when it shrinks).

    At reduction 1 this is torchvision's ``resized_crop``, as RandomResizedCrop calls it.
    """
    top, left, height, width = box
    if reduction == 1:
        return F.resized_crop(image, top, left, height, width, list(size), InterpolationMode.BILINEAR)
    x0, y0 = left / reduction, top / reduction
    x1, y1 = min((left + width) / reduction, image.size[0]), min((top + height) / reduction, image.size[1])
    fx, fy = math.floor(x0), math.floor(y0)
    region = image.crop((fx, fy, math.ceil(x1), math.ceil(y1)))
    return region.resize((size[1], size[0]), Image.Resampling.BILINEAR, box=(x0 - fx, y0 - fy, x1 - fx, y1 - fy))


class ReducedDecode:
    """Image -> `transform` of it, an undecoded JPEG decoded at the largest DCT reduction that
    keeps its short side >= `min_size` (for a transform that resizes the short side to min_size)."""

    takes_undecoded = True

    def __init__(self, transform, min_size: int):
        self.transform, self.min_size = transform, min_size

    def __call__(self, image):
        if not is_undecoded_jpeg(image):
            return self.transform(image)
        return self.transform(decode_reduced(image, dct_reduction(min(image.size), self.min_size))[0])

    def __repr__(self):
        return f"ReducedDecode({self.transform!r}, min_size={self.min_size})"


class ReducedDecodeMultiView:
    """Image -> the views of `multiview` (a MultiViewTransform whose views start with a bilinear
    RandomResizedCrop), an undecoded JPEG decoded once at the largest DCT reduction that leaves
    every view's crop box at least the crop size on each side.

    The boxes are drawn first, from the full-size image as RandomResizedCrop draws them (so the
    same distribution of boxes); then the file is decoded; then each view cuts its box, resizes
    it and runs its other ops. Only the order of the random draws differs from `multiview`.
    """

    takes_undecoded = True

    def __init__(self, multiview: MultiViewTransform):
        if not self.supports(multiview):
            raise ValueError(f"ReducedDecodeMultiView needs views that start with a bilinear RandomResizedCrop; got {multiview!r}")
        self.multiview = multiview
        self.crops = [view.transforms[0] for view in multiview.view_transforms]
        self.rests = [T.Compose(view.transforms[1:]) for view in multiview.view_transforms]

    @staticmethod
    def supports(multiview) -> bool:
        """Whether every view of `multiview` starts with a bilinear RandomResizedCrop."""
        return isinstance(multiview, MultiViewTransform) and all(
            isinstance(view, T.Compose)
            and view.transforms
            and isinstance(view.transforms[0], T.RandomResizedCrop)
            and view.transforms[0].interpolation == InterpolationMode.BILINEAR
            for view in multiview.view_transforms
        )

    def __call__(self, image):
        if not is_undecoded_jpeg(image):
            return self.multiview(image)
        views = [i % len(self.crops) for i in range(self.multiview.num_views)]
        boxes = [self.crops[v].get_params(image, self.crops[v].scale, self.crops[v].ratio) for v in views]
        sizes = [self.crops[v].size for v in views]
        reduction = min(min(dct_reduction(box[2], size[0]), dct_reduction(box[3], size[1])) for box, size in zip(boxes, sizes))
        image, reduction = decode_reduced(image, reduction)
        return [self.rests[v](reduced_resized_crop(image, reduction, box, size)) for v, box, size in zip(views, boxes, sizes)]

    def __repr__(self):
        return f"ReducedDecodeMultiView({self.multiview!r})"


class EncodedImage:
    """One loader sample for device decoding: `data` is a JPEG file's bytes, uint8 (L,), when
    `encoded`, else the uint8 square (3, size, size) the CPU made of an image nvJPEG does not take."""

    def __init__(self, data: torch.Tensor, encoded: bool, size: int):
        self.data, self.encoded, self.size = data, encoded, size


class ShipEncoded:
    """Image -> EncodedImage: the bytes of an undecoded RGB or grayscale JPEG; anything else
    (another format, a CMYK JPEG, an image already decoded) as its uint8 square of `size` px."""

    takes_undecoded = True

    def __init__(self, size: int):
        self.square = UInt8ResizeCrop(size)

    def __call__(self, image) -> EncodedImage:
        size = self.square.size
        if is_undecoded_jpeg(image) and image.mode in ("RGB", "L") and getattr(image, "filename", ""):
            with open(image.filename, "rb") as f:
                data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
            image.close()
            return EncodedImage(data, True, size)
        if is_undecoded_jpeg(image):
            image = decode_reduced(image)[0]
        return EncodedImage(self.square(image), False, size)

    def __repr__(self):
        return f"ShipEncoded(size={self.square.size})"


class EncodedBatch:
    """N EncodedImages; ``.to(device)`` decodes the JPEGs there (nvJPEG on CUDA, libjpeg-turbo on
    the CPU), resizes each short side to `size` and cuts the centre square on that device
    (:class:`UInt8ResizeCrop`, the loader's transform of the batched path): uint8 (N, 3, S, S)."""

    def __init__(self, items):
        self.items = list(items)
        self.square = UInt8ResizeCrop(self.items[0].size)

    def __len__(self):
        return len(self.items)

    def pin_memory(self):
        return EncodedBatch([EncodedImage(item.data.pin_memory(), item.encoded, item.size) for item in self.items])

    def to(self, device, non_blocking: bool = False) -> torch.Tensor:
        device = torch.device(device)
        squares = [item.data.to(device, non_blocking=non_blocking) for item in self.items]
        encoded = [i for i, item in enumerate(self.items) if item.encoded]
        if encoded:
            with warnings.catch_warnings():  # deprecated in torchvision 0.29 for TorchCodec, still nvJPEG's way in
                warnings.filterwarnings("ignore", message=".*deprecated.*", category=DeprecationWarning)
                decoded = decode_jpeg([self.items[i].data for i in encoded], mode=ImageReadMode.RGB, device=device)
            for i, image in zip(encoded, decoded):
                squares[i] = self.square(image)
        return torch.stack(squares)


def collate_encoded(samples):
    """[(EncodedImage, label)] -> (EncodedBatch, labels (N,))."""
    images, labels = zip(*samples)
    return EncodedBatch(images), torch.tensor(labels)


def build_decoding(cfg, transform):
    """The loader's `transform` behind the decoding that the config asks for: ShipEncoded with
    INPUT.GPU_DECODE (needs INPUT.BATCHED_AUGMENTATION), a reduced-size decode with INPUT.REDUCED_DECODE
    (for recipes whose views start with RandomResizedCrop; others decode at full size)."""
    if cfg.INPUT.GPU_DECODE:
        if not isinstance(transform, UInt8ResizeCrop):
            raise ValueError("INPUT.GPU_DECODE decodes for the batched path: set INPUT.BATCHED_AUGMENTATION True as well")
        return ShipEncoded(transform.size)
    if not cfg.INPUT.REDUCED_DECODE:
        return transform
    if isinstance(transform, UInt8ResizeCrop):
        return ReducedDecode(transform, transform.size)
    return ReducedDecodeMultiView(transform) if ReducedDecodeMultiView.supports(transform) else transform
