"""Import ResNet weights of other frameworks into an ssl_lab backbone.

Handles official MoCo v1/v2 checkpoints (`state_dict` with `module.encoder_q.` keys),
torchvision's supervised ResNets, ssl_lab checkpoints (`model` with `backbone.` keys) and
any ResNet state dict whose keys carry a prefix (`module.`, `encoder.`, `online_network.`...).
The prefix is found from the ResNet stem (`<prefix>conv1.weight`); when several encoders
are present, the query/online/student one wins over momentum/target/teacher copies.
"""
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ssl_lab.utils.file_io import PathManager

__all__ = ["ImportReport", "find_backbone_prefix", "import_backbone_state_dict", "load_backbone_weights"]

logger = logging.getLogger(__name__)

# The prefix each catalog format must use.
FORMAT_PREFIXES = {"ssl_lab": "backbone.", "moco": "module.encoder_q.", "torchvision": ""}
_STEM = "conv1.weight"
_IN_BLOCK = re.compile(r"layer\d+\.\d+\.$")
_SECONDARY = ("encoder_k", "momentum", "target", "teacher", "ema")
_HEADS = ("fc.",)


@dataclass
class ImportReport:
    """What an import did: backbone keys loaded, absent, unused, or of the wrong shape."""

    source: str
    prefix: str
    matched: List[str]
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]
    dropped: int

    def __str__(self):
        lines = [f"Loaded {len(self.matched)} backbone tensors from {self.source} (prefix '{self.prefix}'); "
                 f"ignored {self.dropped} other entries (heads, momentum encoders, queues)."]
        for what in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, what)
            if keys:
                lines.append(f"{len(keys)} {what} keys: {', '.join(keys)}")
        return "\n".join(lines)


def _state_dict(checkpoint: Mapping) -> Mapping:
    """The ResNet state dict in `checkpoint`: itself, or a nested one such as ['state_dict'] / ['model']."""
    for candidate in (checkpoint, *(v for v in checkpoint.values() if isinstance(v, Mapping))):
        if any(isinstance(k, str) and k.endswith(_STEM) for k in candidate):
            return candidate
    raise ValueError("No ResNet weights found: no '<prefix>conv1.weight' key at the top level or one level down "
                     f"(top-level keys: {sorted(map(str, checkpoint))[:10]})")


def find_backbone_prefix(state_dict: Mapping) -> str:
    """The key prefix of the main ResNet in `state_dict`, e.g. 'module.encoder_q.' or ''."""
    prefixes = {k[: -len(_STEM)] for k in state_dict if k.endswith(_STEM) and not _IN_BLOCK.search(k[: -len(_STEM)])}
    if not prefixes:
        raise ValueError("No ResNet stem ('<prefix>conv1.weight') in the state dict.")

    def rank(prefix):
        secondary = any(word in prefix for word in _SECONDARY)
        return secondary, -sum(k.startswith(prefix) for k in state_dict), len(prefix)

    return min(prefixes, key=rank)


def import_backbone_state_dict(checkpoint: Mapping, target: Dict[str, torch.Tensor], fmt: Optional[str] = None,
                               source: str = "checkpoint") -> Tuple[Dict[str, torch.Tensor], ImportReport]:
    """Convert `checkpoint` to the keys of the backbone state dict `target`.

    Args:
        checkpoint: a loaded checkpoint file (a state dict or a dict containing one).
        target: the backbone's `state_dict()`; gives the valid keys and shapes.
        fmt: a catalog format ('ssl_lab', 'moco', 'torchvision') fixing the prefix; None detects it.
        source: names the checkpoint in the report.
    Returns:
        the backbone state dict (only keys of `target` with matching shapes) and the report.
    """
    state_dict = _state_dict(checkpoint)
    prefix = find_backbone_prefix(state_dict) if fmt is None else FORMAT_PREFIXES[fmt]
    if not any(k == prefix + _STEM for k in state_dict):
        raise ValueError(f"{source} is not in '{fmt}' format: no key '{prefix}{_STEM}'.")
    converted, unexpected, mismatched, dropped = {}, [], [], 0
    for key, value in state_dict.items():
        name = key[len(prefix):]
        if not key.startswith(prefix) or name.startswith(_HEADS):
            dropped += 1
        elif name not in target:
            unexpected.append(name)
        elif tuple(value.shape) != tuple(target[name].shape):
            mismatched.append(f"{name} {tuple(value.shape)} vs {tuple(target[name].shape)}")
        else:
            converted[name] = value
    # BN batch counters carry no learned state; old checkpoints lack them.
    missing = [k for k in target if k not in converted and not k.endswith("num_batches_tracked")]
    report = ImportReport(source, prefix, sorted(converted), missing, unexpected, mismatched, dropped)
    return converted, report


def load_backbone_weights(model: nn.Module, path: str, fmt: Optional[str] = None) -> ImportReport:
    """Load the ResNet weights in `path` (file, URL or `ssl_lab://<name>`) into `model.backbone`.

    `model` may also be the backbone itself. Momentum encoders and heads of `model` are
    left untouched. Raises ValueError, with the report, when a backbone tensor is missing
    or has another shape (e.g. a ResNet-18 file for a ResNet-50).
    """
    backbone = getattr(model, "backbone", model)
    with PathManager.open(path, "rb") as f:
        checkpoint = torch.load(f, map_location="cpu", weights_only=True)
    converted, report = import_backbone_state_dict(checkpoint, backbone.state_dict(), fmt, source=path)
    if report.missing or report.mismatched:
        raise ValueError(f"The weights in {path} do not fit the backbone:\n{report}")
    backbone.load_state_dict(converted, strict=False)
    (logger.warning if report.unexpected else logger.info)(str(report))
    return report
