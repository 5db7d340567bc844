"""The generated Shapes data (ssl_lab.data.datasets.shapes) as detectron2 COCO datasets."""

import os

from ssl_lab.data.datasets.build import resolve_datasets_root
from ssl_lab.data.datasets.shapes import ensure_shapes

from .d2_compat import patch_detectron2

patch_detectron2()

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.data.datasets import register_coco_instances  # noqa: E402


def shapes_root(cfg) -> str:
    """The Shapes folder under the datasets root of a detectron2 config (DATASETS.SHAPES.ROOT)."""
    return os.path.join(resolve_datasets_root(cfg.DATASETS.SHAPES.ROOT), "shapes")


def register_shapes(cfg) -> None:
    """
    Generate (once; concurrent processes wait on a file lock) and register "shapes_train"
    and "shapes_val" as detectron2 COCO instance datasets, sized by cfg.DATASETS.SHAPES.
    Registering again replaces an earlier registration.
    """
    node, root = cfg.DATASETS.SHAPES, shapes_root(cfg)
    for split, num_images in (("train", node.NUM_TRAIN), ("val", node.NUM_VAL)):
        json_file = ensure_shapes(root, split, num_images, node.IMAGE_SIZE, node.SEED)
        name = f"shapes_{split}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        register_coco_instances(name, {}, json_file, os.path.join(root, split, "images"))
