"""The environment a run uses, logged at its start (as detectron2's collect_env, without its slow probes)."""

import os
import platform
import sys
from typing import Dict, List

import numpy as np
import PIL
import torch
import torchvision


def _version_and_path(module) -> str:
    return f"{getattr(module, '__version__', '?')} @ {os.path.dirname(module.__file__)}"


def collect_env_info() -> str:
    """A table of versions (Python, ssl_lab, torch, torchvision, numpy, Pillow, fvcore), CUDA/cuDNN and GPUs,
    and the CPU: one "name  value" row per line."""
    import fvcore

    import ssl_lab

    rows = [
        ("sys.platform", f"{sys.platform} ({platform.machine()})"),
        ("Python", sys.version.replace("\n", " ")),
        ("ssl_lab", _version_and_path(ssl_lab)),
        ("PyTorch", _version_and_path(torch)),
        ("torchvision", _version_and_path(torchvision)),
        ("numpy", np.__version__),
        ("Pillow", PIL.__version__),
        ("fvcore", getattr(fvcore, "__version__", "?")),
        ("CPU", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"),
        ("CUDA available", str(torch.cuda.is_available())),
    ]
    if torch.cuda.is_available():
        rows.append(("CUDA / cuDNN", f"{torch.version.cuda} / {torch.backends.cudnn.version()}"))
        devices: Dict[str, List[str]] = {}
        for i in range(torch.cuda.device_count()):
            devices.setdefault(torch.cuda.get_device_name(i), []).append(str(i))
        rows += [(f"GPU {','.join(ids)}", name) for name, ids in devices.items()]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
