"""The files that ship with ssl_lab: configs/, projects/*/configs/ and model_zoo/catalog.yaml.

In a checkout (or an editable install) they are read where they are; a wheel carries a copy of
them, in the same layout, in `ssl_lab/_resources` (setup.py puts it there), so relative paths
such as "configs/Shapes/byol_r18.yaml" mean the same file either way.
"""

import os

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHECKOUT = os.path.dirname(_PACKAGE)
_INSTALLED = os.path.join(_PACKAGE, "_resources")


def resources_root() -> str:
    """The checkout's root when ssl_lab runs from a checkout, else the installed package's copy."""
    if os.path.isfile(os.path.join(_CHECKOUT, "model_zoo", "catalog.yaml")):
        return _CHECKOUT
    return _INSTALLED


def resource_path(relative: str) -> str:
    """Absolute path of a shipped file, e.g. resource_path("configs/Shapes/byol_r18.yaml")."""
    return os.path.join(resources_root(), relative)
