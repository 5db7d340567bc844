"""Local files: atomic writes and checksums (the one home of both)."""
import contextlib
import hashlib
import os


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb"):
    """Open `<path>.tmp.<pid>` for writing; on success it is fsynced and renamed over `path`, so
    readers see the old file or the complete new one, never a partial one. On error the temporary
    file is removed and `path` is untouched. The file gets the umask's mode, as a plain `open` gives;
    a temporary file left by a killed process names that process (see `remove_stale_temp_files`)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
