"""The project's PathManager (iopath). The model zoo registers its URL and `ssl_lab://<name>`
handlers into it when `ssl_lab.model_zoo` is imported."""
from iopath.common.file_io import PathManager as _PathManagerClass

__all__ = ["PathManager"]

PathManager = _PathManagerClass()
