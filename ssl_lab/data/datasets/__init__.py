from . import builtin_shapes, image_folder, torchvision_sets  # noqa: F401  (register the families)
from .build import DATASET_REGISTRY, DatasetNotFoundError, build_dataset, datasets_root
from .image_folder import BadImageError

__all__ = ["DATASET_REGISTRY", "DatasetNotFoundError", "BadImageError", "build_dataset", "datasets_root"]
