from .build import build_test_loader, build_train_dataset, build_train_loader, per_rank_batch_size
from .datasets import DATASET_REGISTRY, build_dataset
from .transforms import TRANSFORM_REGISTRY, MultiViewTransform, build_test_transform, build_train_transform, build_view_normalization

__all__ = [k for k in dict(globals()) if not k.startswith("_")]
