"""Let detectron2 v0.6's pure-Python sources run on today's Pillow, NumPy and setuptools.

`make d2` installs detectron2 from the `pb1-detectron2==0.6` sdist without compiling
its C++/CUDA ops (see tools/install_detectron2.sh). :func:`patch_detectron2` patches numpy,
Pillow and `sys.modules` for the whole process, so only the modules of d2_transfer that import
detectron2 call it, before their detectron2 imports; importing the d2_transfer package alone
changes nothing. Every shim applies only where the thing it stands in for is missing, so with an
official (compiled) detectron2 and the libraries of its day it changes nothing either.
"""

import functools
import importlib.resources
import importlib.util
import sys
import types

import numpy as np
from PIL import Image

__all__ = ["has_compiled_ops", "patch_detectron2"]

# Ops in detectron2._C, by the feature that needs them.
_COMPILED_FEATURES = {
    "deform_conv": "deformable convolution (DeformConv)",
    "modulated_deform_conv": "deformable convolution (ModulatedDeformConv)",
    "roi_align_rotated": "ROIAlignRotated",
    "box_iou_rotated": "rotated-box IoU (pairwise_iou_rotated)",
    "COCOeval": "the fast COCO evaluation (use COCOEvaluator(..., use_fast_impl=False))",
    "InstanceAnnotation": "the fast COCO evaluation (use COCOEvaluator(..., use_fast_impl=False))",
}


class _MissingCompiledOps(types.ModuleType):
    """Stands in for `detectron2._C`: importing it works, using any op raises a clear error."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        feature = next((f for prefix, f in _COMPILED_FEATURES.items() if name.startswith(prefix)), "this feature")
        raise NotImplementedError(
            f"detectron2._C.{name}: {feature} needs a compiled detectron2 build; this one is the "
            "pure-Python pb1-detectron2 sources (`make d2`). Install detectron2 the official way "
            "(https://detectron2.readthedocs.io/en/latest/tutorials/install.html) to use it."
        )


def _resource_filename(package: str, resource: str) -> str:
    """pkg_resources.resource_filename for a package that lives in a plain directory."""
    return str(importlib.resources.files(package).joinpath(resource))


def has_compiled_ops() -> bool:
    """Whether detectron2's compiled extension `detectron2._C` is installed."""
    return importlib.util.find_spec("detectron2._C") is not None


@functools.cache
def patch_detectron2() -> None:
    """Apply the shims below (once per process), then import detectron2; call before any other
    detectron2 import."""
    # Pillow >= 10 removed Image.LINEAR, a default argument in data/transforms/transform.py.
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR

    # NumPy >= 1.24 removed the builtin-type aliases; v0.6 uses np.int (the class histogram
    # printed when a train loader is built), np.str (Pascal VOC loading) and np.float
    # (semantic segmentation evaluation). np.bool is back since NumPy 2.0.
    for name, builtin in {"int": int, "float": float, "str": str}.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)

    import detectron2  # after the Pillow/NumPy shims, before anything imports _C

    # detectron2._C is the compiled extension; layers/deform_conv.py imports it at import time.
    # Set as a package attribute only, so `import detectron2._C` still fails where a
    # compiled build is expected (collect_env reports it as not built).
    if not has_compiled_ops():
        detectron2._C = _MissingCompiledOps("detectron2._C")

    # setuptools >= 81 dropped pkg_resources; detectron2.model_zoo imports it for
    # resource_filename only. Lend it a one-function stand-in while model_zoo imports, then
    # take it back so nothing else mistakes it for the real pkg_resources.
    if importlib.util.find_spec("pkg_resources") is None and "detectron2.model_zoo" not in sys.modules:
        sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
        sys.modules["pkg_resources"].resource_filename = _resource_filename
        try:
            import detectron2.model_zoo  # noqa: F401
        finally:
            del sys.modules["pkg_resources"]
