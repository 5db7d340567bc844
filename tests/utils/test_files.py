"""ssl_lab.utils.files: the one atomic write (what reaches the disk before and after the rename), the
temporary names of killed writers, file digests against hashlib."""

import hashlib
import os
import stat
import subprocess
import sys

import pytest

from ssl_lab.utils import files


def test_atomic_write_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path, monkeypatch):
    """A crash (or a power loss) at any point must leave the old file or the whole new one at `path`."""
    path = tmp_path / "config.yaml"
    path.write_text("old")
    temp = files.temp_path(str(path))
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            calls.append(("fsync folder", os.path.samestat(os.fstat(fd), os.stat(tmp_path)), path.read_text()))
        else:
            with open(temp) as f:
                calls.append(("fsync file", f.read()))  # what reaches the disk: everything written, flushed first
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", path.read_text()))  # the old file is whole until the rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with files.atomic_write(str(path), "w") as f:
        f.write("new")
    assert calls == [("fsync file", "new"), ("replace", "old"), ("fsync folder", True, "new")]
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError), files.atomic_write(str(path), "w") as f:
        f.write("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["config.yaml"]  # old file whole, no temp left


def test_atomic_write_passes_newline_through_for_csv(tmp_path):
    with files.atomic_write(str(tmp_path / "t.csv"), "w", newline="") as f:
        f.write("a,b\r\n")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n"


def test_stale_temp_files_of_one_file_name_literally(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in ("a[1].pth", "a1.pth", "b.pth"):
        (tmp_path / f"{name}.tmp.{dead.pid}").write_bytes(b"half")
    (tmp_path / f"a[1].pth.tmp.{os.getpid()}").write_bytes(b"being written")
    assert files.stale_temp_files(str(tmp_path), "a[1].pth") == [str(tmp_path / f"a[1].pth.tmp.{dead.pid}")]
    assert len(files.stale_temp_files(str(tmp_path))) == 3


def test_file_digest_reads_in_chunks_to_hashlibs_digest(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # spans chunk boundaries
    (tmp_path / "f.bin").write_bytes(data)
    assert files.file_digest(str(tmp_path / "f.bin")) == hashlib.sha256(data).hexdigest()
    assert files.file_digest(str(tmp_path / "f.bin"), "md5") == hashlib.md5(data).hexdigest()
