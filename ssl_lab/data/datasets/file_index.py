"""A cached listing of a class-per-folder tree: path, class and size in bytes of every image.

ImageNet's 1.28 M files are listed once and the listing written to
``<cache dir>/file_index/<hash of the tree's real path>.json``; afterwards every rank reads that
one file instead of walking the tree (the loader workers inherit the dataset from their rank).
The listing is stale, and rebuilt, when the classes, the extensions or the modification time of
any directory it lists (the root, each class folder, each folder holding images) differ from
when it was written: adding, removing or renaming a file changes its folder's time. A file
rewritten in place under the same name is not detected.
"""
import hashlib
import json
import logging
import os

from torchvision.datasets.folder import make_dataset

from ssl_lab.utils.files import atomic_write

__all__ = ["FileIndex", "index_path"]

logger = logging.getLogger(__name__)

INDEX_VERSION = 1


def index_path(root: str, cache_dir: str) -> str:
    """Where the index of the tree at `root` lives in `cache_dir`."""
    key = hashlib.sha1(os.path.realpath(root).encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir, "file_index", f"{key}.json")


def _folder_times(root: str, folders) -> dict:
    """{folder relative to root: st_mtime_ns}; a missing folder maps to -1."""
    times = {}
    for folder in folders:
        try:
            times[folder] = os.stat(os.path.join(root, folder)).st_mtime_ns
        except FileNotFoundError:
            times[folder] = -1
    return times


class FileIndex:
    """Paths (relative to `root`), class indices and sizes of the images of one tree, in
    torchvision's ``make_dataset`` order, with what is needed to tell when they are stale."""

    def __init__(self, root: str, class_to_idx: dict, extensions, paths, classes, sizes, folder_times: dict):
        self.root, self.class_to_idx, self.extensions = root, dict(class_to_idx), tuple(extensions)
        self.paths, self.classes, self.sizes, self.folder_times = list(paths), list(classes), list(sizes), folder_times

    @classmethod
    def build(cls, root: str, class_to_idx: dict, extensions) -> "FileIndex":
        """Walk the tree with torchvision's ``make_dataset`` and stat every file."""
        # The class folders' times are taken before the walk: a file added during it leaves the index stale.
        times = _folder_times(root, [""] + sorted(class_to_idx))
        samples = make_dataset(root, class_to_idx, extensions=tuple(extensions))
        paths = [os.path.relpath(path, root) for path, _ in samples]
        times.update(_folder_times(root, sorted({os.path.dirname(path) for path in paths} - set(times))))
        sizes = [os.path.getsize(path) for path, _ in samples]
        return cls(root, class_to_idx, extensions, paths, [c for _, c in samples], sizes, times)

    def is_current(self, root: str, class_to_idx: dict, extensions) -> bool:
        """Whether this index still lists the tree at `root` with these classes and extensions."""
        return (os.path.realpath(root) == os.path.realpath(self.root) and dict(class_to_idx) == self.class_to_idx
                and tuple(extensions) == self.extensions
                and _folder_times(root, self.folder_times) == self.folder_times)

    def samples(self) -> list:
        """[(absolute path, class index)], as ``make_dataset`` returns them."""
        return [(os.path.join(self.root, path), c) for path, c in zip(self.paths, self.classes)]

    def save(self, path: str) -> None:
        """Write atomically, so that concurrent ranks never read half a file."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        record = {"version": INDEX_VERSION, "root": os.path.realpath(self.root), "class_to_idx": self.class_to_idx,
                  "extensions": self.extensions, "folder_times": self.folder_times,
                  "paths": self.paths, "classes": self.classes, "sizes": self.sizes}
        with atomic_write(path, "w") as f:
            json.dump(record, f, separators=(",", ":"))

    @classmethod
    def load(cls, path: str):
        """The index saved at `path`, or None if there is none readable of this version."""
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        if record.get("version") != INDEX_VERSION:
            return None
        return cls(record["root"], record["class_to_idx"], record["extensions"], record["paths"],
                   record["classes"], record["sizes"], record["folder_times"])

    @classmethod
    def cached(cls, root: str, class_to_idx: dict, extensions, cache_dir: str) -> "FileIndex":
        """The index of `root` from `cache_dir` if it is current, else a new one (written there;
        a cache dir that cannot be written costs a warning, not the run)."""
        path = index_path(root, cache_dir)
        index = cls.load(path)
        if index is not None and index.is_current(root, class_to_idx, extensions):
            return index
        if index is not None:
            logger.info(f"The file index {path} of '{root}' is stale (the tree changed); listing it again")
        index = cls.build(root, class_to_idx, extensions)
        try:
            index.save(path)
        except OSError as err:
            logger.warning(f"Cannot write the file index of '{root}' to {path}: {err}")
        return index
