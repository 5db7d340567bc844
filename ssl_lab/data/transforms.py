"""Multi-view augmentation recipes (torchvision on PIL images) in a registry, plus the evaluation
transform. Every op works on uint8 PIL images; the only float step is the last one
(:class:`ToNormalizedTensor`, or on the device :class:`ViewNormalization`)."""

import torch
from PIL import Image, ImageFilter
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import functional as F
from torchvision.transforms.v2 import functional as TF

from ssl_lab.config import ConfigError
from ssl_lab.utils.registry import Registry

from .pil_enhance import adjust_brightness, adjust_contrast
from .pil_hue import adjust_hue, hue_tables

TRANSFORM_REGISTRY = Registry("TRANSFORM")
TRANSFORM_REGISTRY.__doc__ = """
Registry for multi-view augmentation recipes. An entry is called as `entry(cfg)` and returns
the list of per-view transforms; views cycle through that list.
"""


class MultiViewTransform:
    """PIL image -> list of `num_views` augmented tensors (3, H, W)."""

    def __init__(self, view_transforms, num_views: int):
        self.view_transforms = list(view_transforms)
        self.num_views = num_views

    def __call__(self, image):
        return [self.view_transforms[i % len(self.view_transforms)](image) for i in range(self.num_views)]

    def __repr__(self):
        return f"MultiViewTransform(num_views={self.num_views}, views={self.view_transforms})"


class ColorJitter(T.ColorJitter):
    """torchvision's ColorJitter, the same draws, order of ops and output, with the hue shift of
    RGB PIL images through lookup tables (:func:`~ssl_lab.data.pil_hue.adjust_hue`: 1.5-2x faster;
    its tables are built at first use, or by :func:`build_train_transform`) and the brightness and
    contrast through one 256-entry table each (:mod:`~ssl_lab.data.pil_enhance`: ~2x faster)."""

    def forward(self, img):
        order, *factors = self.get_params(self.brightness, self.contrast, self.saturation, self.hue)
        adjust = (adjust_brightness, adjust_contrast, F.adjust_saturation, adjust_hue)
        for i in order.tolist():
            if factors[i] is not None:
                img = adjust[i](img, factors[i])
        return img


class RandomGrayscale(T.RandomGrayscale):
    """torchvision's RandomGrayscale, the same draw and output, with an RGB PIL image greyed by
    PIL's own L -> RGB conversion instead of torchvision's round trip through numpy."""

    def forward(self, img):
        if not (isinstance(img, Image.Image) and img.mode == "RGB"):
            return super().forward(img)
        return img.convert("L").convert("RGB") if torch.rand(1) < self.p else img


class GaussianBlur:
    """PIL image -> PIL image blurred with ``ImageFilter.GaussianBlur(sigma)``, sigma ~ U(sigma)
    drawn from torch's RNG: the blur of the official MoCo v2 code (facebookresearch/moco,
    moco/loader.py) and of lightly, on uint8 pixels. SimCLR and BYOL truncate their kernel at
    ~10% of the image (23 taps at 224 px, i.e. beyond 5.5 sigma for sigma <= 2: the same filter).
    """

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = tuple(sigma)

    def __call__(self, image):
        sigma = float(torch.empty(()).uniform_(*self.sigma))
        return image.filter(ImageFilter.GaussianBlur(sigma))

    def __repr__(self):
        return f"GaussianBlur(sigma={self.sigma})"


def _normalization_constants(mean, std) -> tuple:
    """(scale, shift), float32 (3, 1, 1): ``(pixel / 255 - mean) / std = pixel * scale - shift``."""
    std = torch.tensor(std).view(3, 1, 1)
    return 1 / (255 * std), torch.tensor(mean).view(3, 1, 1) / std


def _normalize_pixels(pixels: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> contiguous float32 ``pixels * scale - shift``, on the pixels' device."""
    out = torch.empty(pixels.shape, device=pixels.device)  # written contiguously, half the time of .float()
    return torch.mul(pixels, scale, out=out).sub_(shift)


class ToNormalizedTensor:
    """PIL image -> float tensor (3, H, W), ``(pixel / 255 - mean) / std`` in one pass over the
    uint8 pixels (torchvision's ToTensor + Normalize, without the intermediate [0, 1] tensor)."""

    def __init__(self, mean, std):
        self.mean, self.std = tuple(mean), tuple(std)
        self._scale, self._shift = _normalization_constants(mean, std)

    def __call__(self, image) -> torch.Tensor:
        return _normalize_pixels(TF.pil_to_tensor(image), self._scale, self._shift)  # (3, H, W) view of the (H, W, 3) pixels

    def __repr__(self):
        return f"ToNormalizedTensor(mean={self.mean}, std={self.std})"


class ViewNormalization(nn.Module):
    """INPUT.NORMALIZE_ON_DEVICE's second half: the list of views a loader yields, each uint8
    (N, 3, H, W) -> float32 (N, 3, H, W), normalized as :class:`ToNormalizedTensor` normalizes
    (the same values); views that are not uint8 pass unchanged. `generator` is unused (the
    signature of the batched augmentation, which the trainer calls in the same place)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)
        scale, shift = _normalization_constants(mean, std)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, views: list, generator=None) -> list:
        return [_normalize_pixels(v, self.scale, self.shift) if v.dtype == torch.uint8 else v for v in views]

    def extra_repr(self):
        return f"mean={self.mean}, std={self.std}"


def _uint8_output(view):
    """`view` with its final ToNormalizedTensor replaced by the uint8 pixels (3, H, W) (views that
    do not end in one are returned unchanged)."""
    if isinstance(view, T.Compose) and view.transforms and isinstance(view.transforms[-1], ToNormalizedTensor):
        return T.Compose(view.transforms[:-1] + [T.PILToTensor()])
    return view


def _normalize(cfg):
    return [ToNormalizedTensor(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)]


def _blur(p: float):
    return T.RandomApply([GaussianBlur(sigma=(0.1, 2.0))], p=p)


def _color_view(cfg, jitter, blur_p: float = 0.0, solarize_p: float = 0.0, grayscale_p: float = 0.2, right_angle_rotations: bool = False):
    size = cfg.INPUT.CROP_SIZE
    ops = [T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.CROP_SCALE))]
    if right_angle_rotations:
        ops.append(T.RandomChoice([T.RandomRotation((angle, angle)) for angle in (0, 90, 180, 270)]))
    ops += [T.RandomApply([ColorJitter(*jitter)], p=0.8), RandomGrayscale(p=grayscale_p)]
    if blur_p > 0:
        ops.append(_blur(blur_p))
    if solarize_p > 0:
        ops.append(T.RandomSolarize(128, p=solarize_p))
    ops.append(T.RandomHorizontalFlip())
    return T.Compose(ops + _normalize(cfg))


@TRANSFORM_REGISTRY.register()
def MoCoV1(cfg):
    """Crop, grayscale 0.2, colour jitter 0.4 (always), flip."""
    size = cfg.INPUT.CROP_SIZE
    return [
        T.Compose(
            [
                T.RandomResizedCrop(size, scale=tuple(cfg.INPUT.CROP_SCALE)),
                RandomGrayscale(p=0.2),
                ColorJitter(0.4, 0.4, 0.4, 0.4),
                T.RandomHorizontalFlip(),
            ]
            + _normalize(cfg)
        )
    ]


@TRANSFORM_REGISTRY.register()
def MoCoV2(cfg):
    """Crop, jitter (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale 0.2, blur p=0.5, flip."""
    return [_color_view(cfg, (0.4, 0.4, 0.4, 0.1), blur_p=0.5)]


@TRANSFORM_REGISTRY.register()
def SimCLR(cfg):
    """Crop, jitter (0.8, 0.8, 0.8, 0.2) p=0.8, grayscale 0.2, blur p=0.5, flip."""
    return [_color_view(cfg, (0.8, 0.8, 0.8, 0.2), blur_p=0.5)]


@TRANSFORM_REGISTRY.register()
def BYOL(cfg):
    """Asymmetric views: blur p=1.0 / p=0.1, solarize p=0 / p=0.2; jitter (0.4, 0.4, 0.2, 0.1)."""
    jitter = (0.4, 0.4, 0.2, 0.1)
    return [_color_view(cfg, jitter, blur_p=1.0), _color_view(cfg, jitter, blur_p=0.1, solarize_p=0.2)]


@TRANSFORM_REGISTRY.register()
def Shapes(cfg):
    """For the built-in Shapes data, where colour is the loudest instance cue: SimCLR's strong
    jitter with hue 0.5, grayscale 0.5, and right-angle rotations, so that what two views of an
    image share is mostly the shape."""
    return [_color_view(cfg, (0.8, 0.8, 0.8, 0.5), blur_p=0.5, grayscale_p=0.5, right_angle_rotations=True)]


@TRANSFORM_REGISTRY.register()
def LinearEval(cfg):
    """Linear-evaluation training view: crop (default scale 0.08-1) and flip."""
    return [
        T.Compose([T.RandomResizedCrop(cfg.INPUT.CROP_SIZE, scale=tuple(cfg.INPUT.CROP_SCALE)), T.RandomHorizontalFlip()] + _normalize(cfg))
    ]


def local_crop_config(cfg):
    """A copy of `cfg` whose INPUT.CROP_SIZE / CROP_SCALE are the local crop's
    (INPUT.MULTI_CROP.LOCAL_SIZE / LOCAL_SCALE): a recipe built from it makes local crops."""
    local = cfg.clone()
    local.defrost()
    local.INPUT.CROP_SIZE = cfg.INPUT.MULTI_CROP.LOCAL_SIZE
    local.INPUT.CROP_SCALE = cfg.INPUT.MULTI_CROP.LOCAL_SCALE
    return local


def view_transforms(cfg) -> list:
    """One transform per view of `cfg.INPUT.AUGMENTATION`: the INPUT.NUM_VIEWS global views, then the
    INPUT.MULTI_CROP.NUM_LOCAL local crops; each group cycles through the recipe's views."""
    if cfg.INPUT.NUM_VIEWS < 1:
        raise ConfigError(f"INPUT.NUM_VIEWS must be >= 1, got {cfg.INPUT.NUM_VIEWS}")
    recipe = TRANSFORM_REGISTRY.get(cfg.INPUT.AUGMENTATION)
    global_views = recipe(cfg)
    views = [global_views[i % len(global_views)] for i in range(cfg.INPUT.NUM_VIEWS)]
    if cfg.INPUT.MULTI_CROP.NUM_LOCAL > 0:
        local_views = recipe(local_crop_config(cfg))
        views += [local_views[i % len(local_views)] for i in range(cfg.INPUT.MULTI_CROP.NUM_LOCAL)]
    return views


def describe_crops(cfg) -> str:
    """The crops of one image, e.g. "2 global 224 px (scale 0.14-1.0) + 6 local 96 px (scale 0.05-0.14)"."""
    crops = f"{cfg.INPUT.NUM_VIEWS} global {cfg.INPUT.CROP_SIZE} px (scale {'-'.join(map(str, cfg.INPUT.CROP_SCALE))})"
    local = cfg.INPUT.MULTI_CROP
    if local.NUM_LOCAL > 0:
        crops += f" + {local.NUM_LOCAL} local {local.LOCAL_SIZE} px (scale {'-'.join(map(str, local.LOCAL_SCALE))})"
    return crops


def _jitters_hue(transform) -> bool:
    """Whether `transform` (an op, or a Compose / RandomApply of them) has a ColorJitter with hue."""
    if isinstance(transform, ColorJitter):
        return transform.hue is not None
    return any(_jitters_hue(op) for op in getattr(transform, "transforms", ()))


def build_train_transform(cfg) -> MultiViewTransform:
    """The recipe `cfg.INPUT.AUGMENTATION`, producing `cfg.INPUT.NUM_VIEWS` global views, then
    `cfg.INPUT.MULTI_CROP.NUM_LOCAL` local crops; with INPUT.NORMALIZE_ON_DEVICE the views end in
    uint8 pixels, which :func:`build_view_normalization` normalizes. The hue tables are built here
    if a view needs them, in the process that forks the loader workers, so that the workers share them."""
    views = view_transforms(cfg)
    if any(_jitters_hue(view) for view in views):
        hue_tables()
    if cfg.INPUT.NORMALIZE_ON_DEVICE:
        views = [_uint8_output(view) for view in views]
    return MultiViewTransform(views, len(views))


def build_view_normalization(cfg) -> ViewNormalization:
    """The device half of INPUT.NORMALIZE_ON_DEVICE for the views of :func:`build_train_transform`."""
    return ViewNormalization(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)


def build_test_transform(cfg):
    """Resize the short side to INPUT.TEST_RESIZE, center-crop INPUT.CROP_SIZE, normalize."""
    return T.Compose([T.Resize(cfg.INPUT.TEST_RESIZE), T.CenterCrop(cfg.INPUT.CROP_SIZE)] + _normalize(cfg))
