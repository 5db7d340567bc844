"""Shapes: a seeded synthetic dataset of small RGB images, one labelled shape per image.

Each image shows one main shape (its class is the image label) and 0-2 smaller
distractor shapes, all annotated in COCO format. Colours, background texture, size and
position are the loudest factors in raw pixels, so raw-pixel kNN stays near chance
while a colour/crop/flip-invariant representation of shape separates the classes.

Layout written by :func:`generate_shapes`::

    root/<split>/images/<image_id:06d>.png
    root/<split>/annotations.json   # COCO; images carry an extra 0-based "label"
"""
import argparse
import colorsys
import json
import logging
import os
import shutil
import tempfile
import time
import zlib

import numpy as np
import torch
from iopath.common.file_io import file_lock
from PIL import Image, ImageDraw

from ssl_lab.utils.errors import MissingFileError

__all__ = ["SHAPE_CLASSES", "generate_shapes", "ensure_shapes", "ShapesDataset"]

logger = logging.getLogger(__name__)

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "cross", "ring")
# Bump when the rendering changes, so stale datasets on disk are regenerated.
_VERSION = 2
_SUPERSAMPLE = 4  # anti-aliasing factor of the rasterizer
_MIN_CONTRAST = 0.35  # luminance gap between a shape and the background colour
_RING_INNER = 0.55  # inner / outer radius of "ring"
# Circumradius of the labelled shape, fraction of the image size: large enough for a stride-32
# ResNet to see its outline at 32 px, varied enough in size and position to hide it from raw pixels.
_MAIN_RADIUS = (0.2, 0.45)
_DISTRACTOR_RADIUS = 0.3  # largest distractor radius, fraction of the main shape's
_SQUASH = (0.8, 1.0)  # aspect ratio range of the random squash
_TEXTURE_AMPLITUDE = (0.05, 0.15)  # background texture amplitude range, in [0, 1] colour units


def _unit_outline(name: str) -> np.ndarray:
    """(N, 2) outline of a shape with circumradius 1 centred at the origin, counter-clockwise."""
    if name in ("circle", "ring"):
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name in ("square", "triangle"):
        n = 4 if name == "square" else 3
        t = np.pi / 2 + np.arange(n) * 2 * np.pi / n
        return np.stack([np.cos(t), np.sin(t)], 1)
    if name == "star":
        t = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if name == "cross":
        a, b = 1.0, 0.3  # arm half-length, arm half-width
        pts = np.array(
            [(b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a),
             (-b, a), (-b, b), (-a, b), (-a, -b), (-b, -b), (-b, -a)]
        )
        return pts / np.hypot(a, b)
    raise ValueError(f"Unknown shape {name}")


_OUTLINES = {name: _unit_outline(name) for name in SHAPE_CLASSES}


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _place(name: str, cx: float, cy: float, r: float, rng: np.random.Generator):
    """
    Random rotation and squash (aspect in _SQUASH along a random axis) of a shape of circumradius ``r``.

    Returns:
        outer (N, 2), hole (M, 2) or None: outlines in pixel coordinates.
    """
    squash = np.diag([1.0, rng.uniform(*_SQUASH)])
    affine = r * _rotation(rng.uniform(0, 2 * np.pi)) @ squash @ _rotation(rng.uniform(0, 2 * np.pi))
    outer = _OUTLINES[name] @ affine.T + (cx, cy)
    hole = None
    if name == "ring":
        hole = (_OUTLINES[name] * _RING_INNER) @ affine.T + (cx, cy)
    return outer, hole


def _rasterize(outer: np.ndarray, hole, size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1], shape (size, size), float32."""
    ss = _SUPERSAMPLE
    mask = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(mask)
    # Pixel (i, j) covers [j, j+1) x [i, i+1); PIL fills supersampled pixel centres.
    draw.polygon([tuple(p) for p in outer * ss - 0.5], fill=255)
    if hole is not None:
        draw.polygon([tuple(p) for p in hole * ss - 0.5], fill=0)
    mask = mask.resize((size, size), Image.BOX)
    return np.asarray(mask, dtype=np.float32) / 255.0


def _luma(rgb) -> float:
    return float(np.dot(rgb, (0.299, 0.587, 0.114)))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(0.2, 1.0), rng.uniform(0.05, 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _contrasting_colour(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    while True:
        colour = _random_colour(rng)
        if abs(_luma(colour) - _luma(bg)) >= _MIN_CONTRAST:
            return colour


def _background(rng: np.random.Generator, size: int):
    """Returns (base colour (3,), textured image (size, size, 3) in [0, 1])."""
    base = _random_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phi = rng.uniform(0, 2 * np.pi)
    proj = xx * np.cos(phi) + yy * np.sin(phi)
    kind = rng.integers(3)
    if kind == 0:  # noise
        field = np.clip(rng.standard_normal((size, size)), -2, 2) / 2
    elif kind == 1:  # stripes, 2-6 periods per image
        field = np.sin(2 * np.pi * rng.uniform(2, 6) * proj + rng.uniform(0, 2 * np.pi))
    else:  # linear gradient
        field = 2 * (proj - proj.min()) / (proj.max() - proj.min()) - 1
    direction = rng.uniform(-1, 1, size=3)
    amplitude = rng.uniform(*_TEXTURE_AMPLITUDE)
    image = base + amplitude * field[..., None] * direction
    return base, np.clip(image, 0, 1)


def _overlaps(box, others, margin: float) -> bool:
    x0, y0, x1, y1 = box
    return any(
        x0 < b[2] + margin and b[0] < x1 + margin and y0 < b[3] + margin and b[1] < y1 + margin
        for b in others
    )


def _render(rng: np.random.Generator, label: int, size: int):
    """
    Returns:
        image: uint8 (size, size, 3)
        objects: list of dict(category, outer (N, 2), hole, coverage (size, size)); the main shape first.
    """
    bg_colour, image = _background(rng, size)
    # Main shape: diameter 40-90% of the image, fully inside it.
    r = rng.uniform(*_MAIN_RADIUS) * size
    cx, cy = rng.uniform(r, size - r, size=2)
    specs = [(label, cx, cy, r)]
    boxes = [(cx - r, cy - r, cx + r, cy + r)]
    for _ in range(rng.integers(3)):
        # Distractors: smaller than the main shape, which has the largest area.
        dr = min(rng.uniform(0.06, 0.1) * size, _DISTRACTOR_RADIUS * r)
        for _try in range(20):
            dx, dy = rng.uniform(dr, size - dr, size=2)
            box = (dx - dr, dy - dr, dx + dr, dy + dr)
            if not _overlaps(box, boxes, margin=1.0):
                specs.append((int(rng.integers(len(SHAPE_CLASSES))), dx, dy, dr))
                boxes.append(box)
                break
    objects = []
    for category, x, y, radius in specs:
        outer, hole = _place(SHAPE_CLASSES[category], x, y, radius, rng)
        coverage = _rasterize(outer, hole, size)
        alpha = coverage[..., None]
        image = image * (1 - alpha) + _contrasting_colour(rng, bg_colour) * alpha
        objects.append(dict(category=category, outer=outer, hole=hole, coverage=coverage))
    return np.round(image * 255).astype(np.uint8), objects


def _coco_annotation(obj, ann_id: int, image_id: int, size: int) -> dict:
    outer, hole = obj["outer"], obj["hole"]
    x0, y0 = np.clip(outer.min(0), 0, size)
    x1, y1 = np.clip(outer.max(0), 0, size)
    polygon = np.concatenate([outer, outer[:1]])
    if hole is not None:  # keyhole polygon: outer loop, then the hole clockwise, joined by a seam
        polygon = np.concatenate([polygon, hole[:1], hole[::-1], outer[:1]])
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": obj["category"] + 1,
        "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        "area": round(float(obj["coverage"].sum()), 2),
        "iscrowd": 0,
        "segmentation": [[round(float(v), 2) for v in polygon.ravel()]],
    }


def _split_seed(seed: int, split: str) -> list:
    return [seed, zlib.crc32(split.encode("utf-8"))]


def _read_info(json_file: str):
    try:
        with open(json_file) as f:
            return json.load(f).get("info", {})
    except (OSError, ValueError):
        return None


def generate_shapes(root: str, split: str, num_images: int, image_size: int = 64, seed: int = 0) -> str:
    """
    Write ``num_images`` images of ``image_size`` x ``image_size`` pixels and their COCO
    annotations to ``root/<split>``; labels are balanced. Images depend only on
    (num_images, image_size, seed, split). Does nothing if an identical dataset is present.
    The split is built in a temporary directory and renamed into place at the end.

    Returns:
        str: path of ``root/<split>/annotations.json``.
    """
    split_dir = os.path.join(root, split)
    json_file = os.path.join(split_dir, "annotations.json")
    info = {
        "description": "ssl_lab Shapes",
        "version": _VERSION,
        "split": split,
        "num_images": num_images,
        "image_size": image_size,
        "seed": seed,
    }
    if _read_info(json_file) == info:
        return json_file

    start = time.perf_counter()
    os.makedirs(root, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{split}.tmp-", dir=root)
    try:
        os.makedirs(os.path.join(tmp_dir, "images"))
        rng = np.random.default_rng(_split_seed(seed, split))
        labels = rng.permutation(np.arange(num_images) % len(SHAPE_CLASSES))
        images, annotations = [], []
        for index, label in enumerate(labels.tolist()):
            image_id = index + 1
            file_name = f"{image_id:06d}.png"
            pixels, objects = _render(rng, label, image_size)
            Image.fromarray(pixels).save(os.path.join(tmp_dir, "images", file_name))
            images.append(
                {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size, "label": label}
            )
            for obj in objects:
                annotations.append(_coco_annotation(obj, len(annotations) + 1, image_id, image_size))
        categories = [{"id": i + 1, "name": name} for i, name in enumerate(SHAPE_CLASSES)]
        with open(os.path.join(tmp_dir, "annotations.json"), "w") as f:
            json.dump({"info": info, "images": images, "annotations": annotations, "categories": categories}, f)
        if os.path.exists(split_dir):
            logger.warning(f"Replacing {split_dir}: it does not match the requested parameters.")
            old_dir = tmp_dir + ".old"
            os.rename(split_dir, old_dir)
            os.rename(tmp_dir, split_dir)
            shutil.rmtree(old_dir)
        else:
            os.rename(tmp_dir, split_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    logger.info(
        f"Generated {num_images} Shapes images ({image_size}px) in {split_dir} "
        f"in {time.perf_counter() - start:.1f}s."
    )
    return json_file


def ensure_shapes(root: str, split: str, num_images: int, image_size: int, seed: int) -> str:
    """:func:`generate_shapes` under a file lock, safe to call from several processes at once."""
    os.makedirs(root, exist_ok=True)
    with file_lock(os.path.join(root, split)):
        return generate_shapes(root, split, num_images, image_size, seed)


class ShapesDataset(torch.utils.data.Dataset):
    """
    A split written by :func:`generate_shapes`. Item ``i`` is ``(image, label)``: the PIL RGB
    image (or ``transform(image)``) and its 0-based class id.

    Attributes:
        classes (list[str]): class names, index = label.
        labels (list[int]): label of every image, in dataset order.
    """

    def __init__(self, root: str, split: str, transform=None):
        json_file = os.path.join(root, split, "annotations.json")
        if not os.path.isfile(json_file):
            raise MissingFileError(
                f"Shapes split '{split}' not found: expected {json_file}. Generate it with "
                f"ssl_lab.data.datasets.shapes.ensure_shapes(root, split, num_images, image_size, seed) or "
                f"`python -m ssl_lab.data.datasets.shapes --root {root} --splits {split}`."
            )
        with open(json_file) as f:
            coco = json.load(f)
        self.root, self.split, self.transform = root, split, transform
        self.classes = [c["name"] for c in sorted(coco["categories"], key=lambda c: c["id"])]
        images = sorted(coco["images"], key=lambda im: im["id"])
        self.file_names = [os.path.join(root, split, "images", im["file_name"]) for im in images]
        self.labels = [int(im["label"]) for im in images]

    def __len__(self) -> int:
        return len(self.file_names)

    def __getitem__(self, i: int):
        with Image.open(self.file_names[i]) as image:
            image = image.convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate the Shapes dataset.")
    parser.add_argument("--root", required=True, help="output directory, one sub-directory per split")
    parser.add_argument("--splits", nargs="+", default=["train", "val"])
    parser.add_argument("--num-train", type=int, default=4000, help="images in the 'train' split")
    parser.add_argument("--num-val", type=int, default=1000, help="images in every other split")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    for split in args.splits:
        num_images = args.num_train if split == "train" else args.num_val
        print(ensure_shapes(args.root, split, num_images, args.image_size, args.seed))


if __name__ == "__main__":
    main()
