"""The checkpoint catalog: `model_zoo/catalog.yaml`, one entry per published checkpoint.

Environment:
    SSL_LAB_MODEL_ZOO_CATALOG: another catalog file to use (e.g. a private zoo).
    SSL_LAB_MODEL_ZOO_URL: a mirror; it replaces the scheme, host and path prefix up to
        the catalog URL's path, e.g. with `http://mirror:8000/zoo`, the URL
        `https://dl.fbaipublicfiles.com/moco/x.pth` is fetched from `http://mirror:8000/zoo/moco/x.pth`.
"""

import difflib
import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple
from urllib.parse import urlparse

import yaml

from .download import Checksum
from .errors import ModelZooError, UnknownModelError
from .resources import resources_root

__all__ = ["CatalogEntry", "PROJECT_ROOT", "catalog_file", "find_by_url", "get_entry", "load_catalog", "source_url"]

PROJECT_ROOT = resources_root()  # where catalog.yaml and the configs it names are (checkout or installed copy)
FORMATS = ("ssl_lab", "moco", "torchvision", "timm", "mocov3")
_CHECKSUM_FIELDS = ("sha256", "sha256_prefix", "md5", "md5_prefix")
_FIELDS = {"config", "opts", "url", "size", "metrics", "source", "format", *_CHECKSUM_FIELDS}


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    config: str
    url: str
    checksum: Checksum
    format: str
    source: str = ""
    size: Optional[int] = None
    opts: Tuple = ()
    metrics: Dict = field(default_factory=dict)

    @property
    def config_file(self) -> str:
        """The config path, absolute (relative paths are relative to the project root)."""
        return os.path.join(PROJECT_ROOT, self.config)


def catalog_file() -> str:
    return os.environ.get("SSL_LAB_MODEL_ZOO_CATALOG") or os.path.join(PROJECT_ROOT, "model_zoo", "catalog.yaml")


def load_catalog(path: Optional[str] = None) -> Dict[str, CatalogEntry]:
    """All entries of the catalog file `path` (default: :func:`catalog_file`), by name.

    Read on each call (a few ms), so edits and `$SSL_LAB_MODEL_ZOO_CATALOG` apply at once.
    """
    path = path or catalog_file()
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except OSError as e:
        raise ModelZooError(f"Model zoo catalog '{path}' cannot be read: {e}") from e
    return {name: _entry(path, name, fields) for name, fields in raw.items()}


def _entry(path: str, name: str, fields: dict) -> CatalogEntry:
    def bad(what):
        return ModelZooError(f"Catalog '{path}', entry '{name}': {what}")

    if not isinstance(fields, dict):
        raise bad("expected a mapping of fields")
    unknown = set(fields) - _FIELDS
    if unknown:
        raise bad(f"unknown fields {sorted(unknown)}; valid fields are {sorted(_FIELDS)}")
    missing = {"config", "url", "format"} - set(fields)
    if missing:
        raise bad(f"missing fields {sorted(missing)}")
    if fields["format"] not in FORMATS:
        raise bad(f"format '{fields['format']}' is not one of {FORMATS}")
    sums = [k for k in _CHECKSUM_FIELDS if k in fields]
    if len(sums) != 1:
        raise bad(f"expected exactly one of {_CHECKSUM_FIELDS}, got {sums}")
    algorithm, _, kind = sums[0].partition("_")
    if not isinstance(fields[sums[0]], str):  # e.g. an all-digit prefix YAML read as a number
        raise bad(f"'{sums[0]}' must be a string; quote it")
    try:
        checksum = Checksum(algorithm, fields[sums[0]])
    except ValueError as e:
        raise bad(str(e)) from None
    if checksum.is_prefix != (kind == "prefix"):
        raise bad(f"'{sums[0]}' must hold {'a prefix' if kind else 'a full digest'}, got '{checksum.value}'")
    return CatalogEntry(
        name=name,
        config=fields["config"],
        url=fields["url"],
        checksum=checksum,
        format=fields["format"],
        source=fields.get("source", ""),
        size=fields.get("size"),
        opts=tuple(fields.get("opts", ())),
        metrics=fields.get("metrics") or {},
    )


def get_entry(name: str) -> CatalogEntry:
    """The entry `name`; :class:`UnknownModelError` listing close names if there is none."""
    catalog = load_catalog()
    if name not in catalog:
        close = difflib.get_close_matches(name, list(catalog), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"Model '{name}' is not in the model zoo catalog {catalog_file()}.{hint} Available: {', '.join(sorted(catalog))}."
        )
    return catalog[name]


def find_by_url(url: str) -> Optional[CatalogEntry]:
    """The entry whose catalog URL is `url`, if any."""
    return next((e for e in load_catalog().values() if e.url == url), None)


def source_url(url: str) -> str:
    """Where to download the catalog URL `url` from: the mirror `$SSL_LAB_MODEL_ZOO_URL`, if set."""
    mirror = os.environ.get("SSL_LAB_MODEL_ZOO_URL")
    if not mirror:
        return url
    return mirror.rstrip("/") + urlparse(url).path
