"""detectron2 transfer of ssl_lab backbones: trainer, MoCo's C4 head, the Shapes dataset.

Importing the package imports no detectron2 and patches nothing: each name below is loaded on first
use from its module, which applies d2_compat's patches before it imports detectron2 (`make d2`'s
pure-Python detectron2 needs them).
"""

import importlib

__all__ = ["add_transfer_config", "Res5ROIHeadsExtraNorm", "register_shapes", "Trainer"]

_MODULE_OF = {"add_transfer_config": "config", "Res5ROIHeadsExtraNorm": "roi_heads", "register_shapes": "shapes", "Trainer": "trainer"}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
