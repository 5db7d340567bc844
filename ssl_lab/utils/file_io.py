"""The project's PathManager (iopath), with verified/caching URL handlers and `ssl_lab://<name>`."""
from iopath.common.file_io import PathManager as _PathManagerClass

__all__ = ["PathManager"]

PathManager = _PathManagerClass()

# Imported after PathManager exists: ssl_lab.model_zoo itself imports this module.
from ssl_lab.model_zoo.handlers import CachedURLHandler, ModelZooHandler  # noqa: E402

PathManager.register_handler(CachedURLHandler())
PathManager.register_handler(ModelZooHandler())
