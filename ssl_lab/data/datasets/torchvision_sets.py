"""CIFAR-10/100 and STL-10 from local files (torchvision readers, never downloading)."""
import os

from torchvision import datasets as tv_datasets

from ssl_lab.utils.registry import UnknownNameError

from .build import DATASET_REGISTRY, datasets_root, require_path

_CIFAR_SPLITS = {"train": True, "test": False, "val": False}
_STL_SPLITS = ("train", "test", "unlabeled", "train+unlabeled")


def _with_labels(dataset, labels):
    dataset.labels = list(labels)
    return dataset


def _cifar(cls, folder: str, family: str, cfg, split: str, transform):
    if split not in _CIFAR_SPLITS:
        raise UnknownNameError(f"{family} has splits {sorted(_CIFAR_SPLITS)}, got '{split}'")
    root = os.path.join(datasets_root(cfg), family)
    require_path(os.path.join(root, folder), f"{family}_{split}",
                 hint=f"Extract the python version of the archive so that '{root}/{folder}' exists.")
    dataset = cls(root, train=_CIFAR_SPLITS[split], transform=transform, download=False)
    return _with_labels(dataset, dataset.targets)


@DATASET_REGISTRY.register()
def cifar10(cfg, split: str, transform):
    """$SSL_LAB_DATASETS/cifar10/cifar-10-batches-py."""
    return _cifar(tv_datasets.CIFAR10, "cifar-10-batches-py", "cifar10", cfg, split, transform)


@DATASET_REGISTRY.register()
def cifar100(cfg, split: str, transform):
    """$SSL_LAB_DATASETS/cifar100/cifar-100-python."""
    return _cifar(tv_datasets.CIFAR100, "cifar-100-python", "cifar100", cfg, split, transform)


@DATASET_REGISTRY.register()
def stl10(cfg, split: str, transform):
    """$SSL_LAB_DATASETS/stl10/stl10_binary (splits train, test, unlabeled, train+unlabeled)."""
    if split not in _STL_SPLITS:
        raise UnknownNameError(f"stl10 has splits {list(_STL_SPLITS)}, got '{split}'")
    root = os.path.join(datasets_root(cfg), "stl10")
    require_path(os.path.join(root, "stl10_binary"), f"stl10_{split}",
                 hint=f"Extract stl10_binary.tar.gz into '{root}'.")
    dataset = tv_datasets.STL10(root, split=split, transform=transform, download=False)
    return _with_labels(dataset, dataset.labels)
