"""The project's PathManager (iopath). The model zoo registers its URL and `ssl_lab://<name>`
handlers into it when `ssl_lab.model_zoo` is imported."""
import os

from iopath.common.file_io import PathManager as _PathManagerClass

__all__ = ["PathManager", "chmod_as_umask"]

PathManager = _PathManagerClass()


def chmod_as_umask(path: str) -> None:
    """Give `path` the mode a plain `open(path, "w")` would (0666 minus the umask), e.g. after
    `tempfile.mkstemp`, which creates files readable by their owner only."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
