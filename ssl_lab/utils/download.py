"""Verified, cached, lock-protected downloads.

A file enters the cache only complete and verified: it is written to a temporary
name next to its final path and renamed after the size and checksum checks pass.
A file lock makes concurrent processes (e.g. 8 ranks) download it once; a cached
file is re-verified and used without any network access.
"""

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlparse

from iopath.common.file_io import file_lock
from tqdm import tqdm

from .errors import ModelZooError
from .files import atomic_write, file_digest, stale_temp_files

__all__ = ["Checksum", "cache_dir", "cache_path", "fetch"]

logger = logging.getLogger(__name__)

SUPPORTED_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checksum:
    """Expected digest of a file: a full hex digest, or a prefix as some publishers give.

    Example: ``Checksum("sha256", "0676ba61")`` (torchvision's filename suffix),
    ``Checksum("md5", "59fd9945")`` (the md5 prefix of the MoCo README).
    """

    algorithm: str
    value: str

    def __post_init__(self):
        full = hashlib.new(self.algorithm).digest_size * 2
        if not 0 < len(self.value) <= full or any(c not in "0123456789abcdef" for c in self.value):
            raise ValueError(f"Bad {self.algorithm} checksum '{self.value}': expected 1-{full} lowercase hex digits")

    @property
    def is_prefix(self) -> bool:
        return len(self.value) < hashlib.new(self.algorithm).digest_size * 2

    def new(self):
        return hashlib.new(self.algorithm)

    def matches(self, hexdigest: str) -> bool:
        return hexdigest.startswith(self.value)

    def __str__(self):
        return f"{self.algorithm} {'prefix ' if self.is_prefix else ''}{self.value}"


def cache_dir() -> str:
    """`$SSL_LAB_CACHE`, default `~/.cache/ssl_lab`."""
    return os.path.expanduser(os.environ.get("SSL_LAB_CACHE") or "~/.cache/ssl_lab")


def cache_path(url: str) -> str:
    """Where `url` is cached: `<cache_dir>/<host>/<path>` (`local` for file:// URLs)."""
    parsed = urlparse(url)
    host = parsed.netloc.replace(":", "_") or "local"
    path = parsed.path.lstrip("/")
    if not path or path.endswith("/"):
        raise ModelZooError(f"URL '{url}' does not name a file.")
    return os.path.join(cache_dir(), host, *path.split("/"))


def fetch(
    url: str, checksum: Optional[Checksum] = None, size: Optional[int] = None, source_url: Optional[str] = None, force: bool = False
) -> str:
    """Return the local path of the verified cached copy of `url`, downloading it if needed.

    Args:
        url: the canonical URL; it determines the cache path.
        checksum: expected digest; None only checks completeness (with a warning).
        size: expected size in bytes, if known.
        source_url: where to download from instead of `url` (a mirror).
        force: download again even if a verified copy is cached.
    """
    local = cache_path(url)
    if not force and _is_valid(local, checksum):  # no lock needed: files are renamed in atomically
        return local
    with file_lock(local):
        for stale in stale_temp_files(os.path.dirname(local), os.path.basename(local)):
            os.remove(stale)
        if not force and _is_valid(local, checksum):  # another process just downloaded it
            return local
        if os.path.isfile(local) and not force:
            logger.warning(f"Cached file {local} does not match {checksum}; downloading it again.")
        if checksum is None:
            logger.warning(f"No checksum known for {url}: the download is only checked for completeness.")
        _download(source_url or url, local, checksum, size)
    return local


def _is_valid(local: str, checksum: Optional[Checksum]) -> bool:
    if not os.path.isfile(local):
        return False
    return checksum is None or checksum.matches(file_digest(local, checksum.algorithm))


def _download(url: str, dst: str, checksum: Optional[Checksum], size: Optional[int]):
    scheme = urlparse(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise ModelZooError(f"Cannot download '{url}': unsupported URL scheme '{scheme}', expected one of {', '.join(SUPPORTED_SCHEMES)}.")
    logger.info(f"Downloading {url} ...")
    with atomic_write(dst) as out:  # a failed check below leaves nothing in the cache
        received, hexdigest = _copy_response(url, out, checksum, size)
        if size is not None and received != size:
            raise ModelZooError(f"Download of {url} has {received} bytes, the catalog expects {size}.")
        if checksum is not None and not checksum.matches(hexdigest):
            raise ModelZooError(
                f"Checksum mismatch for {url}: expected {checksum}, got {checksum.algorithm} {hexdigest}. The file was not cached."
            )
    logger.info(f"Saved {url} to {dst}")


def _copy_response(url, out, checksum, size):
    """Stream `url` into `out`; return (bytes received, hex digest or None)."""
    digest = checksum.new() if checksum is not None else None
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length is not None else size
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(urlparse(url).path)) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    if digest is not None:
                        digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise ModelZooError(f"Download of {url} failed: HTTP {e.code} {e.reason}.") from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise ModelZooError(f"Download of {url} failed after {received} bytes: {e}") from e
    if length is not None and received != int(length):
        raise ModelZooError(
            f"Truncated download of {url}: received {received} of {length} bytes (Content-Length). The file was not cached."
        )
    return received, digest.hexdigest() if digest is not None else None
