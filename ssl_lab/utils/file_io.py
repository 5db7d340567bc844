"""The project's PathManager (iopath). Handlers for URLs and `ssl_lab://` register here."""
from iopath.common.file_io import HTTPURLHandler, PathManager as _PathManagerClass

__all__ = ["PathManager"]

PathManager = _PathManagerClass()
PathManager.register_handler(HTTPURLHandler())
