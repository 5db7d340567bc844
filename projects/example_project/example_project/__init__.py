"""A template project: copy this folder, rename the package, and replace the method.

Importing the package (a config's `IMPORTS: ("projects/example_project/example_project",)`)
registers the `TargetlessBYOL` meta-architecture; `add_config(cfg)` adds its MODEL.TARGETLESS keys.
"""

from .config import add_config
from .method import TargetlessBYOL

__all__ = ["add_config", "TargetlessBYOL"]
