#!/usr/bin/env python
"""Images per second per loader core at ImageNet size, torchvision's MoCo v2 pipeline against
ssl_lab's data paths, measured side by side in one process.

    benchmark_data.py [--images 2000] [--rounds 5 --per-round 40] [--output benchmarks/data_imagenet.json]

The images are $SSL_LAB_DATASETS/imagenet/train when --data says so, else JPEGs generated once
into <$SSL_LAB_CACHE or ~/.cache/ssl_lab>/benchmark_data/imagenet_like (see `generate`). Every
path processes the same images in each round, in a rotating order, and is timed in CPU seconds of
this process (one thread), so a core shared with other jobs slows all paths alike; rates are
images per CPU-second, i.e. per fully used loader core. Paths:

- reference: torchvision's ImageFolder (PIL decode) with the official MoCo v2 augmentation and
  TwoCropsTransform (facebookresearch/moco main_moco.py, `--aug-plus`, 3b42c2a1);
- pil / pil_reduced: ssl_lab's training dataset (MoCoV2 recipe, position-seeded), decode at
  full size / INPUT.REDUCED_DECODE, views shipped as uint8 (INPUT.NORMALIZE_ON_DEVICE: the
  normalization runs on the trainer's device, not timed here);
- pil_reduced_normalized: pil_reduced with INPUT.NORMALIZE_ON_DEVICE False (the worker
  normalizes, as the reference does);
- batched_worker / batched_worker_reduced: the loader side of INPUT.BATCHED_AUGMENTATION (decode,
  uint8 square), the work left to a loader core when the recipe runs on the GPU;
- batched_recipe_cpu: the batched MoCo v2 recipe (both views) on the CPU, per image, in batches;
- gpu_decode_worker: the loader side of INPUT.GPU_DECODE (the file's bytes).

--op-profile N then times the reference's and pil_reduced's ops one by one on N images.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter
from tabulate import tabulate
from torchvision.transforms import RandomApply

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ssl_lab.config import get_cfg  # noqa: E402
from ssl_lab.data import build_train_dataset  # noqa: E402
from ssl_lab.data.batched_augment import build_batched_augmentation  # noqa: E402
from ssl_lab.data.build import SeededAugmentedDataset  # noqa: E402
from ssl_lab.utils.download import cache_dir  # noqa: E402
from ssl_lab.utils.files import atomic_write  # noqa: E402

# ImageNet's JPEGs, the numbers the generated set imitates:
# - bytes: ILSVRC2012_img_train.tar is 147,897,477,120 bytes for 1,281,167 images, 115 KB per image
#   (the size listed by CompVis/taming-transformers taming/data/imagenet.py, ImageNetTrain.SIZES);
# - size: most images have a 500 px long side (Flickr's "medium" size), with a tail of larger
#   ones up to several megapixels (M. Ehrlich, "Compression in the ImageNet Dataset", 2020);
# - settings: most are quality 96 without chroma subsampling (same source).
# The tail fraction below is chosen so that the mean file matches 115 KB; it is not a measurement.
LARGE_FRACTION = 0.05
LARGE_LONG_SIDE = (640, 2600)  # log-uniform
ASPECTS = ((4 / 3, 0.6), (3 / 2, 0.25), (1.0, 0.05), (16 / 9, 0.1))
PORTRAIT_FRACTION = 0.2
JPEG_QUALITY = 96
SPECTRAL_SLOPE = 1.65  # amplitude ~ 1 / f^slope; natural images: about 1 (power 1 / f^2)
SENSOR_NOISE = 1.0
NUM_CLASSES = 10


def image_size(rng) -> tuple:
    """(width, height) drawn from the size distribution above."""
    if rng.random() < LARGE_FRACTION:
        long_side = round(math.exp(rng.uniform(*np.log(LARGE_LONG_SIDE))))
    else:
        long_side = 500
    aspect = rng.choice([a for a, _ in ASPECTS], p=[p for _, p in ASPECTS])
    short_side = round(long_side / aspect)
    return (short_side, long_side) if rng.random() < PORTRAIT_FRACTION else (long_side, short_side)


def photo_like(rng, width: int, height: int) -> Image.Image:
    """Colour noise with a power-law amplitude spectrum, three correlated channels, and a little
    pixel noise: a photo's statistics as far as a JPEG decoder is concerned (bytes per pixel,
    grey-level entropy), not its content."""
    fy = np.fft.fftfreq(height).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(width).astype(np.float32)[None, :]
    amplitude = np.hypot(fx, fy).clip(min=1 / max(width, height)) ** -SPECTRAL_SLOPE
    fields = [
        np.fft.irfft2(amplitude * np.exp(2j * np.pi * rng.random(amplitude.shape, dtype=np.float32)), s=(height, width)) for _ in range(3)
    ]
    pixels = np.stack(fields, -1) @ (np.eye(3) + 0.3 * rng.normal(size=(3, 3))).T
    pixels = (pixels - pixels.mean((0, 1))) * (50 / pixels.std()) + rng.uniform(80, 170, 3)
    pixels += rng.normal(0, SENSOR_NOISE, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def grey_entropy(image: Image.Image) -> float:
    """Shannon entropy (bits) of the 8-bit luma histogram."""
    counts = np.bincount(np.asarray(image.convert("L")).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def generate(root: str, count: int) -> dict:
    """`count` JPEGs in root/train/<class>/ (kept between runs; image i is the same every time),
    and their statistics."""
    stats_path = os.path.join(root, f"stats_{count}.json")
    if os.path.exists(stats_path):
        return json.load(open(stats_path))
    sizes, entropies, pixels, short_sides = [], [], [], []
    for i in range(count):
        path = os.path.join(root, "train", f"n{i % NUM_CLASSES:08d}", f"{i:07d}.JPEG")
        rng = np.random.default_rng(i)
        width, height = image_size(rng)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            image = photo_like(rng, width, height)
            with atomic_write(path) as f:
                image.save(f, "JPEG", quality=JPEG_QUALITY, subsampling=0)
        if i % 10 == 0:
            entropies.append(grey_entropy(Image.open(path)))
        sizes.append(os.path.getsize(path))
        pixels.append(width * height)
        short_sides.append(min(width, height))
    stats = {
        "images": count,
        "mean_bytes": statistics.mean(sizes),
        "median_bytes": statistics.median(sizes),
        "mean_pixels": statistics.mean(pixels),
        "bytes_per_pixel": sum(sizes) / sum(pixels),
        "share_short_side_ge_448": sum(side >= 448 for side in short_sides) / count,
        "grey_entropy_bits": statistics.mean(entropies),
    }
    with atomic_write(stats_path, "w") as f:
        json.dump(stats, f, indent=1)
    return stats


class OfficialGaussianBlur:
    """facebookresearch/moco moco/loader.py GaussianBlur: PIL's filter, sigma ~ U(sigma)."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        import random

        return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class OfficialTwoCropsTransform:
    """facebookresearch/moco moco/loader.py TwoCropsTransform: the base transform, twice."""

    def __init__(self, base_transform):
        self.base_transform = base_transform

    def __call__(self, x):
        return [self.base_transform(x), self.base_transform(x)]


def reference_dataset(train_dir: str):
    """torchvision ImageFolder + main_moco.py's MoCo v2 augmentation (`--aug-plus`) + TwoCropsTransform."""
    from torchvision import datasets, transforms

    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    view = transforms.Compose(
        [
            transforms.RandomResizedCrop(224, scale=(0.2, 1.0)),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.RandomApply([OfficialGaussianBlur([0.1, 2.0])], p=0.5),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    return datasets.ImageFolder(train_dir, OfficialTwoCropsTransform(view))


def ssl_lab_cfg(train_dir: str, **opts):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = os.path.dirname(train_dir)
    cfg.DATASETS.TRAIN = (f"imagefolder_{os.path.basename(train_dir)}",)
    cfg.INPUT.AUGMENTATION = "MoCoV2"
    for key, value in opts.items():
        node, name = key.split("__")
        setattr(getattr(cfg, node), name, value)
    return cfg


def build_paths(train_dir: str, batch: int) -> dict:
    """{name: fn(indices) that processes those images as a loader core would}. A path may return
    the CPU seconds of its own work (the batched recipe: without the loading of its input)."""

    def per_item(dataset):
        return lambda indices: [dataset[i] for i in indices]

    def seeded(dataset):
        return lambda indices: [dataset[(i, i)] for i in indices]

    def dataset(**opts):
        return build_train_dataset(ssl_lab_cfg(train_dir, **opts))

    cfg = ssl_lab_cfg(train_dir, INPUT__BATCHED_AUGMENTATION=True)
    squares = dataset(INPUT__BATCHED_AUGMENTATION=True, INPUT__REDUCED_DECODE=False)
    recipe = build_batched_augmentation(cfg)

    def batched_recipe(indices):
        images = torch.stack([squares[i][0] for i in indices])
        start = time.process_time()
        for k in range(0, len(images), batch):
            recipe(images[k : k + batch])
        return time.process_time() - start

    return {
        "reference": per_item(reference_dataset(train_dir)),
        "pil": seeded(SeededAugmentedDataset(dataset(INPUT__REDUCED_DECODE=False), 0)),
        "pil_reduced": seeded(SeededAugmentedDataset(dataset(INPUT__REDUCED_DECODE=True), 0)),
        "pil_reduced_normalized": seeded(SeededAugmentedDataset(dataset(INPUT__NORMALIZE_ON_DEVICE=False), 0)),
        "batched_worker": per_item(squares),
        "batched_worker_reduced": per_item(dataset(INPUT__BATCHED_AUGMENTATION=True, INPUT__REDUCED_DECODE=True)),
        "batched_recipe_cpu": batched_recipe,
        "gpu_decode_worker": per_item(dataset(INPUT__BATCHED_AUGMENTATION=True, INPUT__GPU_DECODE=True)),
    }


class TimedOp:
    """A view's op that adds the CPU seconds of each call to ``seconds[its name]`` (RandomApply
    named after the op it applies)."""

    def __init__(self, op, seconds: dict):
        self.op, self.seconds = op, seconds
        self.name = type(op.transforms[0] if isinstance(op, RandomApply) else op).__name__.removeprefix("Official")

    def __call__(self, image):
        start = time.process_time()
        out = self.op(image)
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.process_time() - start
        return out


def op_profile(train_dir: str, indices: list) -> dict:
    """{path: {op: CPU ms per image}} for the reference and pil_reduced, their views' ops timed one
    by one; "rest" is what happens outside them: opening and decoding the file (and, for pil_reduced,
    the two crops, which ReducedDecodeMultiView cuts before the view's other ops)."""
    reference = reference_dataset(train_dir)
    ours = build_train_dataset(ssl_lab_cfg(train_dir, INPUT__REDUCED_DECODE=True))
    items = {
        "reference": (reference, [reference.transform.base_transform], lambda i: i),
        "pil_reduced": (SeededAugmentedDataset(ours, 0), ours.transform.rests, lambda i: (i, i)),
    }
    profile = {}
    for name, (dataset, views, key) in items.items():
        seconds: dict = {}
        for view in views:
            view.transforms = [TimedOp(op, seconds) for op in view.transforms]
        start = time.process_time()
        for i in indices:
            dataset[key(i)]
        rest = time.process_time() - start - sum(seconds.values())
        profile[name] = {op: 1000 * s / len(indices) for op, s in sorted(seconds.items(), key=lambda kv: -kv[1])}
        profile[name]["rest"] = 1000 * rest / len(indices)
    return profile


def measure(paths: dict, num_images: int, rounds: int, per_round: int, seed: int = 0) -> dict:
    """{path: [CPU seconds of each round]}: round r gives every path the same `per_round` images
    (drawn at random), the paths in an order rotated by r."""
    rng = np.random.default_rng(seed)
    names = list(paths)
    seconds = {name: [] for name in names}
    for r in range(rounds):
        indices = rng.choice(num_images, per_round, replace=False).tolist()
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.process_time()
            result = paths[name](indices)
            elapsed = time.process_time() - start
            seconds[name].append(result if isinstance(result, float) else elapsed)
    return seconds


def device_decode_rate(train_dir: str, device: str, batch: int, num_images: int, repeats: int = 5) -> float:
    """Images/s of EncodedBatch.to(device) (nvJPEG on CUDA, then the uint8 squares on the device)
    on `batch` encoded files, best of `repeats` after one warm-up (wall time; the device is not shared)."""
    from ssl_lab.data.decode import collate_encoded

    shipped = build_train_dataset(ssl_lab_cfg(train_dir, INPUT__BATCHED_AUGMENTATION=True, INPUT__GPU_DECODE=True))
    encoded, _ = collate_encoded([shipped[i] for i in range(min(batch, num_images))])
    encoded = encoded.pin_memory() if device.startswith("cuda") else encoded
    best = math.inf
    for _ in range(repeats + 1):
        start = time.perf_counter()
        encoded.to(device, non_blocking=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return len(encoded) / best


def summarize(seconds: dict, per_round: int) -> list:
    """Rows: path, images/s per core (median over rounds), ratio to the reference (median and
    range of the per-round ratios)."""
    rows = []
    for name, times in seconds.items():
        ratios = [ref / t for ref, t in zip(seconds["reference"], times)]
        rows.append(
            {
                "path": name,
                "images_per_core_s": per_round / statistics.median(times),
                "ratio": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        )
    worker = {row["path"]: row for row in rows}
    for loader in ("batched_worker", "batched_worker_reduced"):  # everything on one core
        rate = 1 / (1 / worker[loader]["images_per_core_s"] + 1 / worker["batched_recipe_cpu"]["images_per_core_s"])
        rows.append(
            {
                "path": f"{loader} + batched_recipe_cpu",
                "images_per_core_s": rate,
                "ratio": rate / worker["reference"]["images_per_core_s"],
                "ratio_min": None,
                "ratio_max": None,
            }
        )
    return rows


def table(rows: list) -> str:
    return tabulate(
        [
            [
                row["path"],
                f"{row['images_per_core_s']:.0f}",
                f"**{row['ratio']:.2f}**",
                "" if row["ratio_min"] is None else f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}",
            ]
            for row in rows
        ],
        headers=["path", "img/s per core", "ratio to reference", "per-round range"],
        tablefmt="github",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="an ImageFolder train split (default: generated images)")
    parser.add_argument("--images", type=int, default=2000, help="images to generate / draw from")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=40, help="images per path and round")
    parser.add_argument("--batch", type=int, default=64, help="batch of the batched recipe")
    parser.add_argument(
        "--decode-device",
        default="",
        metavar="DEVICE",
        help="also time INPUT.GPU_DECODE's decode of one batch of --batch files on DEVICE (e.g. cuda)",
    )
    parser.add_argument(
        "--op-profile",
        type=int,
        default=0,
        metavar="N",
        help="also time the reference's and pil_reduced's ops one by one on N random images",
    )
    parser.add_argument("--output", default="", metavar="FILE", help="write the rates and ratios as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a loader worker's setting
    if args.data:
        train_dir, stats = args.data, {}
    else:
        root = os.path.join(cache_dir(), "benchmark_data", "imagenet_like")
        stats = generate(root, args.images)
        train_dir = os.path.join(root, "train")
    paths = build_paths(train_dir, args.batch)
    num_images = min(args.images, len(build_train_dataset(ssl_lab_cfg(train_dir))))
    measure(paths, num_images, 1, 4, seed=1)  # warm-up: file cache, lazy imports
    start = time.time()
    seconds = measure(paths, num_images, args.rounds, args.per_round)
    rows = summarize(seconds, args.per_round)
    print(f"data: {train_dir} {json.dumps(stats)}")
    print(table(rows))
    profile = None
    if args.op_profile:
        indices = np.random.default_rng(2).choice(num_images, args.op_profile, replace=False).tolist()
        profile = op_profile(train_dir, indices)
        ops = list(dict.fromkeys(op for path in profile.values() for op in path))
        print(
            tabulate(
                [[op] + [f"{profile[path].get(op, 0):.2f}" for path in profile] for op in ops],
                headers=["op (CPU ms per image)"] + list(profile),
                tablefmt="github",
            )
        )
    device_rate = None
    if args.decode_device:
        device_rate = device_decode_rate(train_dir, args.decode_device, args.batch, num_images)
        print(f"EncodedBatch.to({args.decode_device!r}), batch {args.batch}: {device_rate:.0f} images/s")
    if args.output:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        record = {
            "command": " ".join(sys.argv),
            "commit": commit,
            "data": stats,
            "rows": rows,
            "cpu_seconds": seconds,
            "op_ms_per_image": profile,
            "device_decode": {"device": args.decode_device, "batch": args.batch, "images_per_s": device_rate},
            "wall_seconds": time.time() - start,
            "load_average": os.getloadavg(),
            "torch": torch.__version__,
            "pillow": Image.__version__,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with atomic_write(args.output, "w") as f:
            json.dump(record, f, indent=1)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
