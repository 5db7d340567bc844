import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ssl_lab.data.datasets import shapes
from ssl_lab.data.datasets.shapes import SHAPE_CLASSES, ShapesDataset, ensure_shapes, generate_shapes

SIZE = 32


def _pixels(root, split):
    ds = ShapesDataset(str(root), split)
    return np.stack([np.asarray(ds[i][0]) for i in range(len(ds))])


def _files(split_dir):
    out = {}
    for dirpath, _, names in os.walk(split_dir):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, split_dir)] = f.read()
    return out


def test_deterministic(tmp_path):
    for root in (tmp_path / "a", tmp_path / "b"):
        generate_shapes(str(root), "train", 40, SIZE, seed=3)
        generate_shapes(str(root), "val", 40, SIZE, seed=3)
    generate_shapes(str(tmp_path / "c"), "train", 40, SIZE, seed=4)
    files_a = _files(tmp_path / "a" / "train")
    assert len(files_a) == 41
    assert files_a == _files(tmp_path / "b" / "train")
    train = _pixels(tmp_path / "a", "train")
    assert train.shape == (40, SIZE, SIZE, 3)
    for other in (_pixels(tmp_path / "a", "val"), _pixels(tmp_path / "c", "train")):
        assert (train != other).any(axis=(1, 2, 3)).all()


@pytest.mark.slow
def test_split_seed_independent_of_python_hash(tmp_path):
    generate_shapes(str(tmp_path / "here"), "val", 6, 16, seed=0)
    code = "import sys; from ssl_lab.data.datasets.shapes import generate_shapes; generate_shapes(sys.argv[1], 'val', 6, 16)"
    env = dict(os.environ, PYTHONHASHSEED="123")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there")], env=env, check=True)
    assert _files(tmp_path / "here" / "val") == _files(tmp_path / "there" / "val")


def test_coco_annotations(tmp_path):
    json_file = generate_shapes(str(tmp_path), "train", 60, SIZE, seed=0)
    coco = COCO(json_file)
    assert [coco.cats[i + 1]["name"] for i in range(len(SHAPE_CLASSES))] == list(SHAPE_CLASSES)
    assert sorted(coco.getImgIds()) == list(range(1, 61))
    num_distractors = 0
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = np.asarray(Image.open(tmp_path / "train" / "images" / img["file_name"]), dtype=np.float32)
        luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert 1 <= len(anns) <= 3
        num_distractors += len(anns) - 1
        main = max(anns, key=lambda a: a["area"])
        assert main["category_id"] == img["label"] + 1
        assert max(main["bbox"][2:]) >= 0.2 * SIZE
        covered = np.zeros((SIZE, SIZE), bool)
        for ann in anns:
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= SIZE and y + h <= SIZE
            assert ann["iscrowd"] == 0
            rle = mask_utils.frPyObjects(ann["segmentation"], SIZE, SIZE)
            mask = mask_utils.decode(mask_utils.merge(rle)).astype(bool)
            assert abs(mask.sum() - ann["area"]) <= 0.15 * ann["area"] + 6
            rows, cols = np.nonzero(mask)
            assert x - 1 <= cols.min() and cols.max() <= x + w and y - 1 <= rows.min() and rows.max() <= y + h
            covered[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = True
            if ann is main:
                shape_mask = mask
        background = luma[~covered]
        # The main shape stands out from the background in grayscale.
        assert abs(np.median(luma[shape_mask]) - np.median(background)) > 40
    assert num_distractors > 0


def test_labels_balanced(tmp_path):
    generate_shapes(str(tmp_path), "train", 40, SIZE)
    ds = ShapesDataset(str(tmp_path), "train")
    counts = np.bincount(ds.labels, minlength=len(SHAPE_CLASSES))
    assert counts.max() - counts.min() <= 1 and counts.sum() == 40
    with open(tmp_path / "train" / "annotations.json") as f:
        assert ds.labels == [im["label"] for im in sorted(json.load(f)["images"], key=lambda im: im["id"])]


def test_dataset(tmp_path):
    ensure_shapes(str(tmp_path), "val", 12, SIZE, seed=1)
    ds = ShapesDataset(str(tmp_path), "val", transform=T.ToTensor())
    assert len(ds) == 12 and ds.classes == list(SHAPE_CLASSES)
    image, label = ds[5]
    assert isinstance(image, torch.Tensor) and image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert isinstance(label, int) and label == ds.labels[5]
    pil, _ = ShapesDataset(str(tmp_path), "val")[5]
    assert pil.mode == "RGB" and pil.size == (SIZE, SIZE)
    assert torch.equal(T.ToTensor()(pil), image)


def test_missing_dataset_message(tmp_path):
    expected = os.path.join(str(tmp_path), "val", "annotations.json")
    with pytest.raises(FileNotFoundError) as e:
        ShapesDataset(str(tmp_path), "val")
    message = str(e.value)
    assert expected in message and "ensure_shapes" in message and "python -m ssl_lab.data.datasets.shapes" in message


def test_idempotent(tmp_path):
    json_file = generate_shapes(str(tmp_path), "train", 12, SIZE, seed=0)
    image_file = tmp_path / "train" / "images" / "000001.png"
    stamps = (os.stat(json_file).st_mtime_ns, os.stat(image_file).st_mtime_ns)
    assert generate_shapes(str(tmp_path), "train", 12, SIZE, seed=0) == json_file
    assert ensure_shapes(str(tmp_path), "train", 12, SIZE, seed=0) == json_file
    assert (os.stat(json_file).st_mtime_ns, os.stat(image_file).st_mtime_ns) == stamps
    # Other parameters replace the split.
    generate_shapes(str(tmp_path), "train", 7, SIZE, seed=0)
    assert len(ShapesDataset(str(tmp_path), "train")) == 7
    assert len(os.listdir(tmp_path / "train" / "images")) == 7
    assert sorted(os.listdir(tmp_path)) == ["train", "train.lock"]


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch):
    generate_shapes(str(tmp_path), "train", 6, SIZE)
    before = _files(tmp_path / "train")
    render = shapes._render
    seen = []

    def failing_render(*args):
        # Mid-generation (as if killed now): old splits intact, new ones absent.
        if len(seen) == 3:
            seen.append((_files(tmp_path / "train") == before, os.path.exists(tmp_path / "val")))
            raise RuntimeError("killed")
        seen.append(None)
        return render(*args)

    monkeypatch.setattr(shapes, "_render", failing_render)
    for split in ("train", "val"):  # replacing an existing split, and creating a new one
        seen.clear()
        with pytest.raises(RuntimeError, match="killed"):
            generate_shapes(str(tmp_path), split, 10, SIZE)
        assert seen[-1] == (True, False)
    assert _files(tmp_path / "train") == before
    assert os.listdir(tmp_path) == ["train"]


def test_ensure_shapes_concurrent(tmp_path, monkeypatch):
    render = shapes._render
    calls = []
    monkeypatch.setattr(shapes, "_render", lambda *args: calls.append(1) or render(*args))
    results, errors = [], []

    def worker():
        try:
            results.append(ensure_shapes(str(tmp_path), "train", 10, SIZE, seed=0))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and len(calls) == 10
    assert len(ShapesDataset(str(tmp_path), "train")) == 10


def test_raw_pixel_knn_near_chance(tmp_path):
    """Colour, background and position dominate raw pixels: 1-NN and 5-NN cosine are near chance."""
    for split, n in (("train", 300), ("val", 150)):
        generate_shapes(str(tmp_path), split, n, SIZE, seed=0)
    train, val = _pixels(tmp_path, "train") / 255.0, _pixels(tmp_path, "val") / 255.0
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    feats = [((x - mean) / std).reshape(len(x), -1) for x in (train, val)]
    feats = [f / np.linalg.norm(f, axis=1, keepdims=True) for f in feats]
    train_labels = np.array(ShapesDataset(str(tmp_path), "train").labels)
    val_labels = np.array(ShapesDataset(str(tmp_path), "val").labels)
    neighbours = np.argsort(-feats[1] @ feats[0].T, axis=1)
    chance = 1 / len(SHAPE_CLASSES)
    for k in (1, 5):
        votes = train_labels[neighbours[:, :k]]
        pred = np.array([np.bincount(v, minlength=len(SHAPE_CLASSES)).argmax() for v in votes])
        accuracy = (pred == val_labels).mean()
        # Measured: 0.28 (k=1) and 0.25 (k=5), chance 0.167.
        assert accuracy < 2 * chance, (k, accuracy)


def test_cli(tmp_path):
    shapes.main(["--root", str(tmp_path), "--splits", "val", "--num-val", "5", "--image-size", "16", "--seed", "2"])
    with open(tmp_path / "val" / "annotations.json") as f:
        info = json.load(f)["info"]
    assert (info["num_images"], info["image_size"], info["seed"], info["split"]) == (5, 16, 2, "val")
    assert len(ShapesDataset(str(tmp_path), "val")) == 5
