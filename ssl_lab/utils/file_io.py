"""The project's PathManager (iopath), with the handlers of every path a config may name, registered
here so that any code reading through it opens them: http(s):// and file:// URLs (downloaded once into
`$SSL_LAB_CACHE`, a catalog URL verified against its checksum) and `ssl_lab://<name>` (the verified
cached checkpoint of model zoo catalog entry `name`)."""

from typing import Any, List

from iopath.common.file_io import PathHandler
from iopath.common.file_io import PathManager as _PathManagerClass

from .download import SUPPORTED_SCHEMES, fetch
from .model_catalog import find_by_url, get_entry, source_url

__all__ = ["CachedURLHandler", "ModelZooHandler", "PathManager"]


class _LocalCopyHandler(PathHandler):
    """Opens paths through their local (cached) copy; read-only."""

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        self._check_kwargs(kwargs)
        if mode not in ("r", "rb"):
            raise ValueError(f"{type(self).__name__} opens '{path}' read-only, not with mode '{mode}'")
        return open(self._get_local_path(path), mode, buffering)


class CachedURLHandler(_LocalCopyHandler):
    """http://, https:// and file:// URLs, downloaded once into `$SSL_LAB_CACHE`.

    A URL listed in the catalog is verified against its checksum and fetched from the
    mirror `$SSL_LAB_MODEL_ZOO_URL` if set; other URLs are checked for completeness only.
    """

    def _get_supported_prefixes(self) -> List[str]:
        return [f"{scheme}://" for scheme in SUPPORTED_SCHEMES]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        entry = find_by_url(path)
        if entry is None:
            return fetch(path, force=force)
        return fetch(path, entry.checksum, entry.size, source_url(path), force=force)


class ModelZooHandler(_LocalCopyHandler):
    """`ssl_lab://<name>`: the verified cached checkpoint of catalog entry `name`."""

    PREFIX = "ssl_lab://"

    def _get_supported_prefixes(self) -> List[str]:
        return [self.PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        entry = get_entry(path[len(self.PREFIX) :])
        return fetch(entry.url, entry.checksum, entry.size, source_url(entry.url), force=force)


PathManager = _PathManagerClass()
PathManager.register_handler(CachedURLHandler())
PathManager.register_handler(ModelZooHandler())
