"""Dataset registry. A dataset name is "<family>_<split>", e.g. imagenet_train, shapes_val."""
import os

from ssl_lab.utils.errors import UserError
from ssl_lab.utils.registry import Registry, UnknownNameError

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
Registry for dataset families. An entry is called as `entry(cfg, split, transform)` and returns
a torch Dataset of (transform(image), int label) pairs, with attribute `labels` (list of ints)
when the split is labelled.
"""


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset whose files are not where the config says."""


def resolve_datasets_root(root: str = "") -> str:
    """`root` if set, else $SSL_LAB_DATASETS, else ./datasets: the one rule for where datasets live."""
    return root or os.environ.get("SSL_LAB_DATASETS", "datasets")


def datasets_root(cfg) -> str:
    """The datasets root of an ssl_lab config (DATASETS.ROOT, see resolve_datasets_root)."""
    return resolve_datasets_root(cfg.DATASETS.ROOT)


def require_path(path: str, dataset: str, hint: str = "") -> str:
    """Return `path`, or raise DatasetNotFoundError naming it if it does not exist."""
    if not os.path.exists(path):
        raise DatasetNotFoundError(
            f"Dataset '{dataset}' not found: expected '{path}'. Set $SSL_LAB_DATASETS or DATASETS.ROOT "
            f"to the folder that holds it.{(' ' + hint) if hint else ''}"
        )
    return path


def build_dataset(cfg, name: str, transform):
    """The dataset `name` ("<family>_<split>") with `transform` applied to each image."""
    family, sep, split = name.rpartition("_")
    if not sep or family not in DATASET_REGISTRY:
        known = ", ".join(sorted(k for k, _ in DATASET_REGISTRY))
        raise UnknownNameError(f"Unknown dataset '{name}': expected '<family>_<split>' with family one of: {known}")
    return DATASET_REGISTRY.get(family)(cfg, split, transform)
