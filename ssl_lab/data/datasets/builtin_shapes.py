"""The built-in Shapes family: generated on first use under <datasets root>/shapes."""
import os

from ssl_lab.utils import comm
from ssl_lab.utils.registry import UnknownNameError

from .build import DATASET_REGISTRY, datasets_root
from .shapes import ShapesDataset, ensure_shapes


@DATASET_REGISTRY.register()
def shapes(cfg, split: str, transform):
    """shapes_train / shapes_val, sized by cfg.DATASETS.SHAPES."""
    if split not in ("train", "val"):
        raise UnknownNameError(f"shapes has splits ['train', 'val'], got '{split}'")
    node = cfg.DATASETS.SHAPES
    root = os.path.join(datasets_root(cfg), "shapes")
    num_images = node.NUM_TRAIN if split == "train" else node.NUM_VAL
    ensure_shapes(root, split, num_images, node.IMAGE_SIZE, node.SEED)
    comm.synchronize()
    return ShapesDataset(root, split, transform)
