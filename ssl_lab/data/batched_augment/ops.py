"""Batched augmentation ops: each maps a float batch (N, 3, H, W) in [0, 1] to a batch, drawing
its per-image random parameters from an optional ``torch.Generator`` (CPU), so the result
depends on the seed only, not on the device the images are on."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

__all__ = [
    "BatchedRandomResizedCrop",
    "BatchedColorJitter",
    "BatchedGrayscale",
    "BatchedGaussianBlur",
    "BatchedSolarize",
    "BatchedRightAngleRotation",
    "BatchedHorizontalFlip",
    "BatchedNormalize",
    "BatchedView",
    "BatchedMultiView",
]

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision and PIL


def _rand(shape, generator, device) -> torch.Tensor:
    """U[0, 1) drawn from `generator` (default: the global CPU RNG) and moved to `device`, so the
    parameters depend on the seed only, not on the device the images are on."""
    gen_device = generator.device if generator is not None else "cpu"
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _uniform(n: int, bounds, generator, device) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * _rand(n, generator, device)


def _coin(n: int, p: float, generator, device) -> torch.Tensor:
    """(N,) bool, True with probability p."""
    return _rand(n, generator, device) < p


def _chosen(n: int, p: float, generator, device) -> torch.Tensor:
    """Indices (on `device`) of the images an op with probability p applies to, one coin per image.
    The coins stay on the generator's device (the CPU), so choosing costs no device sync."""
    return _coin(n, p, generator, "cpu").nonzero().squeeze(1).to(device)


def _apply_to(x: torch.Tensor, index: torch.Tensor, fn) -> torch.Tensor:
    """x with the images at `index` replaced by fn(those images); the others untouched. Cheaper on
    the CPU than computing fn on every image and selecting with torch.where."""
    return x.index_copy(0, index, fn(x.index_select(0, index))) if index.numel() else x


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, 1, 1), to broadcast over (N, C, H, W)."""
    return values.view(-1, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma (three multiply-adds: a reduction over the channel axis
    costs several times more on the CPU)."""
    r, g, b = x.split(1, dim=1)
    return torch.addcmul(torch.addcmul(r * _GRAY_WEIGHTS[0], g, x.new_tensor(_GRAY_WEIGHTS[1])), b, x.new_tensor(_GRAY_WEIGHTS[2]))


def _mean_gray(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, 1, 1) mean luma, from the channel means (luma is linear)."""
    return _per_sample(x.mean((2, 3)) @ x.new_tensor(_GRAY_WEIGHTS))


class BatchedRandomResizedCrop(nn.Module):
    """Random area/aspect crop of each image, resampled to (size, size) with roi_align.

    Crop parameters follow torchvision's RandomResizedCrop: up to 10 draws of
    (area fraction in `scale`, log-uniform aspect in `ratio`), the first that fits
    is placed uniformly; otherwise a centre crop of the clamped aspect.
    """

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts: int = 10):
        super().__init__()
        self.size, self.scale, self.ratio, self.attempts = size, tuple(scale), tuple(ratio), attempts

    def sample_boxes(self, n: int, height: int, width: int, generator=None, device="cpu") -> torch.Tensor:
        """(N, 4) integer-valued crop boxes (x0, y0, x1, y1) inside [0, width] x [0, height]."""
        shape = (n, self.attempts)
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * _rand(shape, generator, device))
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * _rand(shape, generator, device))
        w = torch.round(torch.sqrt(area * aspect))
        h = torch.round(torch.sqrt(area / aspect))
        fits = (w > 0) & (h > 0) & (w <= width) & (h <= height)
        first = fits.to(torch.uint8).argmax(1, keepdim=True)  # index of the first attempt that fits
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        y0 = torch.floor(_rand(n, generator, device) * (height - h + 1))
        x0 = torch.floor(_rand(n, generator, device) * (width - w + 1))
        # Fallback (no attempt fits): the largest centred crop with the aspect clamped to `ratio`.
        in_ratio = width / height
        fw, fh = float(width), float(height)
        if in_ratio < min(self.ratio):
            fh = float(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            fw = float(round(height * max(self.ratio)))
        fallback = x0.new_tensor([(width - fw) // 2, (height - fh) // 2, fw, fh])
        sampled = torch.stack([x0, y0, w, h], 1)
        x0, y0, w, h = torch.where(fits.any(1, keepdim=True), sampled, fallback).unbind(1)
        return torch.stack([x0, y0, x0 + w, y0 + h], 1)

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """(N, 3, H, W) float -> (N, 3, size, size)."""
        n, _, height, width = x.shape
        boxes = self.sample_boxes(n, height, width, generator, x.device).to(x.dtype)
        rois = torch.cat([torch.arange(n, device=x.device, dtype=x.dtype)[:, None], boxes], 1)
        return roi_align(x, rois, (self.size, self.size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)

    def extra_repr(self):
        return f"size={self.size}, scale={self.scale}, ratio={self.ratio}"


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of (N, 3, H, W) images in [0, 1] by `shift` (N,) turns.

    Elementwise only (amax/amin and comparisons, no argmax or gather, which cost ~50x more on the
    CPU); ties between maximal channels resolve to red, then green, as torchvision's _rgb2hsv.
    """
    r, g, b = x.split(1, dim=1)
    maxc = x.amax(1, keepdim=True)
    chroma = maxc - x.amin(1, keepdim=True)
    # Hue in sextants [0, 6): red max -> (g - b) / c, green max -> 2 + (b - r) / c, else 4 + (r - g) / c
    # (numerator 0 where c = 0).
    hue = torch.where(maxc == r, g - b, torch.where(maxc == g, b - r + 2 * chroma, r - g + 4 * chroma))
    hue = hue.div_(chroma.clamp(min=torch.finfo(x.dtype).tiny)).add_(6 * _per_sample(shift)).remainder_(6)
    # Channel c = max - chroma * bump(hue + n_c - 2) for n = (5, 3, 1), with bump(u) = clamp(2 - |u|, 0, 1)
    # repeated every 6 sextants: the two copies at 0 and 6 cover u in [-1, 9).
    u = hue + x.new_tensor([3.0, 1.0, -1.0]).view(1, 3, 1, 1)
    bump = u.abs().neg_().add_(2).clamp_(0, 1).add_(u.sub_(6).abs_().neg_().add_(2).clamp_(0, 1))
    return bump.mul_(chroma).neg_().add_(maxc)


class BatchedColorJitter(nn.Module):
    """With probability p per image: brightness, contrast, saturation, hue (this order) with
    factors drawn per image from the given ranges; None skips that adjustment."""

    def __init__(self, brightness=None, contrast=None, saturation=None, hue=None, p: float = 1.0):
        super().__init__()
        self.brightness, self.contrast, self.saturation, self.hue, self.p = brightness, contrast, saturation, hue, p

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        n, device = x.shape[0], x.device
        apply = _coin(n, self.p, generator, "cpu")  # the parameters are drawn on the CPU, then moved

        def factor(bounds):  # (N, 1, 1, 1); 1 (identity) where the jitter is not applied
            return _per_sample(torch.where(apply, _uniform(n, bounds, generator, "cpu"), 1.0).to(device))

        if self.brightness is not None:
            x = (x * factor(self.brightness)).clamp_(0, 1)
        if self.contrast is not None:
            x = torch.lerp(_mean_gray(x), x, factor(self.contrast)).clamp_(0, 1)
        if self.saturation is not None:
            x = torch.lerp(_gray(x), x, factor(self.saturation)).clamp_(0, 1)
        if self.hue is not None:
            shift = _uniform(n, self.hue, generator, device)
            index = apply.nonzero().squeeze(1).to(device)  # apply is on the CPU: no device sync
            x = _apply_to(x, index, lambda chosen: _shift_hue(chosen, shift[index]))
        return x

    def extra_repr(self):
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, hue={self.hue}, p={self.p}"


class BatchedGrayscale(nn.Module):
    """With probability p per image: luma copied to the 3 channels."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        index = _chosen(x.shape[0], self.p, generator, x.device)
        return _apply_to(x, index, lambda chosen: _gray(chosen).expand_as(chosen))

    def extra_repr(self):
        return f"p={self.p}"


class BatchedGaussianBlur(nn.Module):
    """With probability p per image: separable Gaussian blur, sigma ~ U(sigma) per image,
    fixed kernel (kx, ky), reflect padding (torchvision's kernel and padding)."""

    def __init__(self, kernel_size, sigma=(0.1, 2.0), p: float = 1.0):
        super().__init__()
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.sigma, self.p = tuple(sigma), p

    @staticmethod
    def _kernels(size: int, sigma: torch.Tensor) -> torch.Tensor:
        """(M,) sigmas -> (M, size) normalized 1-D kernels."""
        half = (size - 1) / 2
        offsets = torch.linspace(-half, half, size, device=sigma.device, dtype=sigma.dtype)
        kernels = torch.exp(-0.5 * (offsets / sigma[:, None]) ** 2)
        return kernels / kernels.sum(1, keepdim=True)

    def _blur(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """(M, C, H, W) images, (M,) sigmas -> the blurred images (one grouped conv per axis)."""
        m, c, height, width = x.shape
        kx, ky = self.kernel_size
        wx = self._kernels(kx, sigma).repeat_interleave(c, 0).view(m * c, 1, 1, kx)
        wy = self._kernels(ky, sigma).repeat_interleave(c, 0).view(m * c, 1, ky, 1)
        y = F.pad(x.reshape(1, m * c, height, width), (kx // 2, kx // 2, ky // 2, ky // 2), mode="reflect")
        return F.conv2d(F.conv2d(y, wx, groups=m * c), wy, groups=m * c).view(m, c, height, width)

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        index = _chosen(x.shape[0], self.p, generator, x.device)
        sigma = _uniform(x.shape[0], self.sigma, generator, x.device).to(x.dtype)
        return _apply_to(x, index, lambda chosen: self._blur(chosen, sigma[index]))

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, sigma={self.sigma}, p={self.p}"


class BatchedSolarize(nn.Module):
    """With probability p per image: values >= threshold (in [0, 1]) become 1 - value."""

    def __init__(self, threshold: float, p: float):
        super().__init__()
        self.threshold, self.p = threshold, p

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        apply = _per_sample(_coin(x.shape[0], self.p, generator, x.device))
        return torch.where(apply & (x >= self.threshold), 1 - x, x)

    def extra_repr(self):
        return f"threshold={self.threshold}, p={self.p}"


class BatchedRightAngleRotation(nn.Module):
    """Per image, a counter-clockwise rotation by one of `angles` (multiples of 90 degrees) drawn
    with weights `p` (uniform if None); the images must be square."""

    def __init__(self, angles, p=None):
        super().__init__()
        if any(a % 90 for a in angles):
            raise ValueError(f"BatchedRightAngleRotation takes multiples of 90 degrees, got {angles}")
        self.angles = tuple(angles)
        weights = p if p is not None else [1.0] * len(angles)
        self.p = tuple(w / sum(weights) for w in weights)

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"right-angle rotations need square images, got {tuple(x.shape[-2:])}")
        cumulative = torch.tensor(self.p).cumsum(0)
        choice = torch.searchsorted(cumulative, _rand(x.shape[0], generator, "cpu"), right=True)
        quarter = (torch.tensor(self.angles)[choice.clamp_(max=len(self.p) - 1)] // 90 % 4).to(x.device)
        out = x
        for k in sorted({a // 90 % 4 for a in self.angles} - {0}):
            out = torch.where(_per_sample(quarter == k), torch.rot90(x, k, (-2, -1)), out)
        return out

    def extra_repr(self):
        return f"angles={self.angles}, p={self.p}"


class BatchedHorizontalFlip(nn.Module):
    """With probability p per image: mirror left-right."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return _apply_to(x, _chosen(x.shape[0], self.p, generator, x.device), lambda chosen: chosen.flip(-1))

    def extra_repr(self):
        return f"p={self.p}"


class BatchedNormalize(nn.Module):
    """(x - mean) / std per channel."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return (x - x.new_tensor(self.mean).view(1, -1, 1, 1)) / x.new_tensor(self.std).view(1, -1, 1, 1)

    def extra_repr(self):
        return f"mean={self.mean}, std={self.std}"


class BatchedView(nn.Sequential):
    """One view's ops in order, each drawing its per-image parameters from `generator`:
    (N, 3, H, W) float in [0, 1] -> (N, 3, S, S)."""

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        for op in self:
            x = op(x, generator)
        return x


class BatchedMultiView(nn.Module):
    """uint8 batch (N, 3, H, W) on any device -> list of `num_views` float tensors (N, 3, S, S).

    Args:
        recipe_params: one BatchedView (or list of ops) per distinct view; views cycle
            through them, as in MultiViewTransform.
        num_views: V.
    """

    def __init__(self, recipe_params, num_views: int):
        super().__init__()
        if num_views < 1:
            raise ValueError(f"num_views must be >= 1, got {num_views}")
        self.views = nn.ModuleList([v if isinstance(v, BatchedView) else BatchedView(*v) for v in recipe_params])
        self.num_views = num_views

    @torch.no_grad()
    def forward(self, images: torch.Tensor, generator=None):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected a uint8 batch (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        x = images.float().div_(255)
        return [self.views[i % len(self.views)](x, generator) for i in range(self.num_views)]
