"""The cached file index of class-per-folder trees: same samples as torchvision's walk, reused
without walking, rebuilt when the tree changed."""

import os

import pytest
from torchvision.datasets import ImageFolder

from ssl_lab.data.datasets import file_index
from ssl_lab.data.datasets.file_index import FileIndex, index_path
from ssl_lab.data.datasets.image_folder import RobustImageFolder


@pytest.fixture
def tree(tmp_path):
    """root/{cat,dog}/ with files of known sizes, one in a nested folder, one not an image."""
    root = tmp_path / "train"
    files = {"cat/1.jpg": 11, "cat/0.JPEG": 7, "cat/sub/2.png": 5, "dog/3.jpg": 13, "dog/notes.txt": 3}
    for name, size in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return str(root)


def _dataset(root, cache):
    return RobustImageFolder(root, index_dir=str(cache))


def test_index_lists_what_torchvision_lists_with_sizes(tree, tmp_path):
    dataset = _dataset(tree, tmp_path / "cache")
    assert dataset.samples == ImageFolder(tree, loader=lambda p: p).samples
    assert dataset.file_sizes == [7, 11, 5, 13]  # cat/0.JPEG, cat/1.jpg, cat/sub/2.png, dog/3.jpg
    assert os.path.exists(index_path(tree, str(tmp_path / "cache")))


def test_a_current_index_is_read_without_walking(tree, tmp_path, monkeypatch):
    _dataset(tree, tmp_path / "cache")

    def no_walk(*args, **kwargs):
        raise AssertionError("the tree was walked again")

    monkeypatch.setattr(file_index, "make_dataset", no_walk)
    assert _dataset(tree, tmp_path / "cache").samples == ImageFolder(tree, loader=lambda p: p).samples


@pytest.mark.parametrize("change", ["add", "remove", "rename_nested", "new_class"])
def test_a_changed_tree_makes_the_index_stale(tree, tmp_path, change):
    _dataset(tree, tmp_path / "cache")
    if change == "add":
        open(os.path.join(tree, "dog", "4.jpg"), "wb").write(b"y" * 17)
    elif change == "remove":
        os.remove(os.path.join(tree, "cat", "1.jpg"))
    elif change == "rename_nested":
        os.rename(os.path.join(tree, "cat", "sub", "2.png"), os.path.join(tree, "cat", "sub", "5.png"))
    else:
        os.makedirs(os.path.join(tree, "emu"))
        open(os.path.join(tree, "emu", "6.jpg"), "wb").write(b"z")
    dataset = _dataset(tree, tmp_path / "cache")
    assert dataset.samples == ImageFolder(tree, loader=lambda p: p).samples
    assert dataset.file_sizes == [os.path.getsize(path) for path, _ in dataset.samples]
    reread = FileIndex.load(index_path(tree, str(tmp_path / "cache")))
    assert reread.samples() == dataset.samples  # the rebuilt index was written back


def test_an_unwritable_cache_costs_a_warning_not_the_run(tree, tmp_path, caplog):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would be")
    assert _dataset(tree, blocker).samples == ImageFolder(tree, loader=lambda p: p).samples
    assert "Cannot write the file index" in caplog.text
