"""Local files: atomic writes, temporary names, checksums and generated blocks of text files (the one home
of each)."""

import contextlib
import glob
import hashlib
import os
import re
from typing import Optional

from .errors import UserError

__all__ = ["atomic_write", "file_digest", "replace_marked_block", "stale_temp_files", "temp_path"]

_TEMP = re.compile(r".+\.tmp\.(\d+)$")


def temp_path(path: str) -> str:
    """`<path>.tmp.<pid>`: where this process writes `path` before renaming it into place."""
    return f"{path}.tmp.{os.getpid()}"


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", newline: Optional[str] = None):
    """Open :func:`temp_path` of `path` for writing (`newline` as `open` takes it, e.g. "" for csv);
    on success the file is flushed and fsynced, renamed over `path` and the rename fsynced with its
    folder, so readers (and a machine that loses power) see the old file or the complete new one, never
    a partial one. On error the temporary file is removed and `path` is untouched. The file gets the
    umask's mode, as a plain `open` gives; a temporary file left by a killed process names that
    process (see :func:`stale_temp_files`)."""
    tmp = temp_path(path)
    try:
        with open(tmp, mode, newline=newline) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_folder(os.path.dirname(os.path.abspath(path)))


def _fsync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_temp_files(folder: str, name: Optional[str] = None) -> list:
    """Temporary files (see :func:`temp_path`) in `folder`, of the file `name` or of any, whose writing
    process no longer runs: left by a kill during a write, safe to delete."""
    paths = glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(name) if name else '*'}.tmp.*"))
    return sorted(p for p in paths if (m := _TEMP.fullmatch(os.path.basename(p))) and not _pid_alive(int(m.group(1))))


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def replace_marked_block(path: str, start: str, end: str, text: str) -> None:
    """Put `text` between the marker lines `start` and `end` of the text file `path` (e.g. a README's
    `<!-- name -->` and `<!-- /name -->`), in place of what stood there; the file is written atomically.
    A file without the markers raises :class:`UserError` and is left as it was."""
    with open(path) as f:
        content = f.read()
    pattern = re.compile(f"({re.escape(start)}\n).*?({re.escape(end)})", re.S)
    if not pattern.search(content):
        raise UserError(f"{path} lacks the markers {start} ... {end} to write between")
    with atomic_write(path, "w") as f:
        f.write(pattern.sub(lambda m: f"{m.group(1)}{text}\n{m.group(2)}", content))
