"""Reduced-size JPEG decode (same crop boxes, bounded pixel difference) and device decode."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from ssl_lab.config import get_cfg
from ssl_lab.data.batched_augment import UInt8ResizeCrop
from ssl_lab.data.datasets.image_folder import BadImageError, RobustImageFolder, load_rgb, open_image
from ssl_lab.data.decode import (
    ReducedDecode,
    ReducedDecodeMultiView,
    ShipEncoded,
    build_decoding,
    collate_encoded,
    dct_reduction,
    decode_reduced,
    reduced_resized_crop,
)
from ssl_lab.data.transforms import MultiViewTransform

# Lowest PSNR (dB) allowed between a crop decoded at reduced size and the same crop of the full
# decode. Measured on the 1200 x 900 test image below over the 56 of 60 RandomResizedCrop boxes
# (seed 0) that allow a reduction: minimum 44.0 dB, median 50.9 dB; the centre square: 44.0 dB.
MIN_PSNR = 40.0


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio of two uint8 images (PIL or arrays), in dB, in float64."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Colour noise with a natural image's 1/f amplitude spectrum, plus sharp-edged rectangles."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    amplitude = np.hypot(fx, fy).clip(min=1 / max(width, height)) ** -1.5
    fields = [np.fft.irfft2(amplitude * np.exp(2j * np.pi * rng.random(amplitude.shape)), s=(height, width)) for _ in range(3)]
    pixels = np.stack(fields, -1)
    pixels = (pixels - pixels.mean()) * (50 / pixels.std()) + 128
    for _ in range(20):
        x, y = rng.integers(0, width), rng.integers(0, height)
        pixels[y : y + rng.integers(10, 200), x : x + rng.integers(10, 200)] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    """A 1200 x 900 JPEG at ImageNet's usual settings (quality 96, no chroma subsampling)."""
    path = str(tmp_path_factory.mktemp("jpeg") / "big.jpg")
    photo_like(1200, 900).save(path, quality=96, subsampling=0)
    return path


def test_dct_reduction_keeps_the_side_at_least_the_size():
    sides = (100, 447, 448, 895, 896, 1791, 1792, 5000)
    assert [dct_reduction(side, 224) for side in sides] == [1, 1, 2, 2, 4, 4, 8, 8]


@pytest.mark.parametrize("box", [(0, 0, 900, 1200), (100, 200, 700, 900), (333, 417, 457, 501), (451, 711, 449, 489)])
def test_reduced_crop_matches_the_full_decode(big_jpeg, box):
    """The same box cut from a decode at 1/2 or 1/4 size is within MIN_PSNR of torchvision's crop
    of the full decode."""
    reference = T.functional.resized_crop(load_rgb(big_jpeg), *box, [224, 224], T.InterpolationMode.BILINEAR)
    reduction = min(dct_reduction(box[2], 224), dct_reduction(box[3], 224))
    image, applied = decode_reduced(open_image(big_jpeg), reduction)
    assert applied == reduction > 1 and image.size == tuple(math.ceil(s / reduction) for s in (1200, 900))
    assert psnr(reduced_resized_crop(image, applied, box, (224, 224)), reference) >= MIN_PSNR


def test_full_decode_is_torchvisions_loader(big_jpeg, tmp_path):
    """load_rgb and decode_reduced at reduction 1 (which decode RGB files in place) give the pixels
    of torchvision's ImageFolder loader (decode, then convert to RGB), for an RGB and a grey JPEG."""
    from torchvision.datasets.folder import pil_loader

    grey = str(tmp_path / "grey.jpg")
    Image.open(big_jpeg).convert("L").save(grey, quality=90)
    for path in (big_jpeg, grey):
        expected = pil_loader(path)
        for image in (load_rgb(path), decode_reduced(open_image(path), 1)[0]):
            assert image.mode == "RGB" and image.tobytes() == expected.tobytes(), path


def test_reduction_one_is_torchvisions_crop(big_jpeg):
    box = (101, 203, 300, 250)
    expected = T.functional.resized_crop(load_rgb(big_jpeg), *box, [224, 224], T.InterpolationMode.BILINEAR)
    image, applied = decode_reduced(open_image(big_jpeg), 1)
    assert applied == 1
    assert np.array_equal(np.asarray(reduced_resized_crop(image, 1, box, (224, 224))), np.asarray(expected))


def test_multiview_draws_the_boxes_of_random_resized_crop(big_jpeg):
    """Under one seed, each view is the crop of the box RandomResizedCrop.get_params draws (on the
    full-size image, views in order) of the full decode, within MIN_PSNR; some views decode reduced."""
    crop = T.RandomResizedCrop(224, scale=(0.2, 1.0))
    multiview = ReducedDecodeMultiView(MultiViewTransform([T.Compose([crop, T.PILToTensor()])], 2))
    full = load_rgb(big_jpeg)
    reductions = []
    for seed in range(4):
        torch.manual_seed(seed)
        views = multiview(open_image(big_jpeg))
        torch.manual_seed(seed)
        boxes = [T.RandomResizedCrop.get_params(full, (0.2, 1.0), (3 / 4, 4 / 3)) for _ in range(2)]
        for view, box in zip(views, boxes):
            reference = T.functional.resized_crop(full, *box, [224, 224], T.InterpolationMode.BILINEAR)
            assert psnr(view.permute(1, 2, 0).numpy(), reference) >= MIN_PSNR, (seed, box)
        reductions.append(min(min(dct_reduction(b[2], 224), dct_reduction(b[3], 224)) for b in boxes))
    assert max(reductions) > 1


def test_multiview_passes_decoded_images_through():
    image = photo_like(64, 48)
    view = T.Compose([T.RandomResizedCrop(32), T.PILToTensor()])
    torch.manual_seed(0)
    expected = MultiViewTransform([view], 2)(image)
    torch.manual_seed(0)
    views = ReducedDecodeMultiView(MultiViewTransform([view], 2))(image)
    assert all(torch.equal(a, b) for a, b in zip(views, expected))


def test_reduced_uint8_square_matches_the_full_decode(big_jpeg):
    expected = UInt8ResizeCrop(224)(load_rgb(big_jpeg))
    reduced = ReducedDecode(UInt8ResizeCrop(224), 224)(open_image(big_jpeg))
    assert psnr(reduced.permute(1, 2, 0).numpy(), expected.permute(1, 2, 0).numpy()) >= MIN_PSNR


def test_truncated_jpeg_is_a_bad_image_and_skipped(tmp_path, big_jpeg):
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    data = open(big_jpeg, "rb").read()
    (folder / "0_truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "1_good.jpg").write_bytes(data)
    transform = ReducedDecode(UInt8ResizeCrop(64), 64)
    with pytest.raises(BadImageError, match="0_truncated.jpg"):
        RobustImageFolder(str(tmp_path / "train"), transform)[0]
    dataset = RobustImageFolder(str(tmp_path / "train"), transform, on_bad_image="skip")
    assert torch.equal(dataset[0][0], dataset[1][0]) and dataset.num_skipped == 1


def _encoded_folder(tmp_path, big_jpeg):
    """Two JPEGs (colour, grayscale) and a PNG under one class."""
    folder = tmp_path / "train" / "a"
    folder.mkdir(parents=True)
    (folder / "0.jpg").write_bytes(open(big_jpeg, "rb").read())
    photo_like(300, 500, seed=1).convert("L").save(folder / "1.jpg", quality=90)
    photo_like(200, 150, seed=2).save(folder / "2.png")
    return str(tmp_path / "train")


def test_encoded_batch_on_the_cpu_equals_the_uint8_loader(tmp_path, big_jpeg):
    """The CPU fallback of device decoding gives the uint8 loader's squares bit for bit."""
    root = _encoded_folder(tmp_path, big_jpeg)
    shipped = RobustImageFolder(root, ShipEncoded(224))
    assert [shipped[i][0].encoded for i in range(3)] == [True, True, False]
    batch, labels = collate_encoded([shipped[i] for i in range(3)])
    expected = torch.stack([UInt8ResizeCrop(224)(load_rgb(path)) for path, _ in shipped.samples])
    assert torch.equal(batch.to("cpu"), expected) and labels.tolist() == [0, 0, 0]


@pytest.mark.cuda
def test_encoded_batch_decodes_on_the_gpu(tmp_path, big_jpeg):
    """nvJPEG's squares match the CPU fallback's within MIN_PSNR (the decoders' IDCTs differ)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    root = _encoded_folder(tmp_path, big_jpeg)
    shipped = RobustImageFolder(root, ShipEncoded(224))
    batch, _ = collate_encoded([shipped[i] for i in range(3)])
    on_gpu = batch.pin_memory().to("cuda", non_blocking=True)
    on_cpu = batch.to("cpu")
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.uint8
    for gpu, cpu in zip(on_gpu.cpu(), on_cpu):
        assert psnr(gpu.permute(1, 2, 0).numpy(), cpu.permute(1, 2, 0).numpy()) >= MIN_PSNR


def test_gpu_decode_needs_the_batched_path():
    cfg = get_cfg()
    cfg.INPUT.GPU_DECODE = True
    with pytest.raises(ValueError, match="BATCHED_AUGMENTATION True"):
        build_decoding(cfg, MultiViewTransform([T.RandomResizedCrop(32)], 2))
