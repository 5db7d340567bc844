"""Convert the ResNet of a pretraining checkpoint to detectron2's parameter names.

Reads ssl_lab checkpoints (`{"model": {"backbone.conv1.weight": ...}}`), official
MoCo ones (`{"state_dict": {"module.encoder_q.conv1.weight": ...}}`) and plain
torchvision state dicts. Only the query/online backbone is kept; momentum encoders,
heads, queues and `fc` are dropped.
"""

import os
import pickle
import re
from typing import Dict, Mapping, Tuple

import numpy as np
import torch

from ssl_lab.utils.files import atomic_write

from .backbone_weights import (
    RESNET_BLOCK,
    RESNET_STEM,
    NoBackboneError,
    checkpoint_state_dict,
    extract_backbone_state_dict,
    load_checkpoint,
)

__all__ = ["convert_to_d2", "d2_resnet_config", "save_d2_checkpoint", "convert_checkpoint_file"]

_BLOCK_MODULES = {"downsample.0": "shortcut", "downsample.1": "shortcut.norm"}
_DEPTHS = {
    ("basic", (2, 2, 2, 2)): 18,
    ("basic", (3, 4, 6, 3)): 34,
    ("bottleneck", (3, 4, 6, 3)): 50,
    ("bottleneck", (3, 4, 23, 3)): 101,
    ("bottleneck", (3, 8, 36, 3)): 152,
}


def _d2_name(name: str) -> str:
    stem = RESNET_STEM.fullmatch(name)
    if stem:
        module, param = stem.groups()
        return f"stem.conv1.{param}" if module == "conv1" else f"stem.conv1.norm.{param}"
    block = RESNET_BLOCK.fullmatch(name)
    if not block:
        raise KeyError(f"'{name}' is not a torchvision ResNet parameter")
    stage, index, module, param = block.groups()
    module = _BLOCK_MODULES.get(module) or re.sub(r"bn(\d)", r"conv\1.norm", module)
    return f"res{int(stage) + 1}.{index}.{module}.{param}"


def convert_to_d2(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """
    Rename a torchvision ResNet state dict (basic or bottleneck blocks, any width) to
    detectron2's ResNet names: conv1/bn1 -> stem.conv1/stem.conv1.norm, layerN -> res{N+1},
    bnM -> convM.norm, downsample.0/1 -> shortcut/shortcut.norm. Values become numpy arrays.
    """
    return {_d2_name(k): v.detach().cpu().numpy() for k, v in state_dict.items()}


def _stage_depths(state_dict: Mapping) -> Tuple[str, Tuple[int, ...]]:
    block = "bottleneck" if any(k.endswith(".conv3.weight") for k in state_dict) else "basic"
    blocks = {(m.group(1), m.group(2)) for m in map(RESNET_BLOCK.fullmatch, state_dict) if m}
    return block, tuple(sum(1 for s, _ in blocks if s == str(stage)) for stage in range(1, 5))


def d2_resnet_config(state_dict: Mapping[str, torch.Tensor]) -> list:
    """
    detectron2 config options (as `KEY VALUE` opts) that build a ResNet matching a torchvision
    state dict: MODEL.RESNETS.DEPTH and, for wide or R18/34 nets, the channel counts.
    """
    block, stages = _stage_depths(state_dict)
    if (block, stages) not in _DEPTHS:
        raise NoBackboneError(f"unknown ResNet layout: {block} blocks per stage {stages}")
    stem = state_dict["conv1.weight"].shape[0]
    opts = ["MODEL.RESNETS.DEPTH", _DEPTHS[block, stages], "MODEL.RESNETS.STEM_OUT_CHANNELS", stem]
    if block == "basic":
        return opts + ["MODEL.RESNETS.RES2_OUT_CHANNELS", stem]
    bottleneck = state_dict["layer1.0.conv1.weight"].shape[0]
    return opts + ["MODEL.RESNETS.RES2_OUT_CHANNELS", 4 * bottleneck, "MODEL.RESNETS.WIDTH_PER_GROUP", bottleneck]


def save_d2_checkpoint(weights: Mapping[str, np.ndarray], path: str) -> None:
    """Write detectron2's pickle format atomically (temp file in the same folder + rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    data = {"model": dict(weights), "__author__": "ssl_lab", "matching_heuristics": True}
    with atomic_write(path) as f:
        pickle.dump(data, f)


def convert_checkpoint_file(src: str, dst: str) -> dict:
    """
    Convert the backbone of checkpoint `src` (path or URL) to detectron2's `dst` (.pkl).

    Returns:
        dict with "prefix" (where the backbone was found), "weights" (the converted
        arrays), "dropped" (keys left out, sorted) and "d2_opts" (see d2_resnet_config).
    """
    if not dst.endswith(".pkl"):
        raise ValueError(f"{dst}: the output must end in .pkl (detectron2 reads .pkl files as converted weights)")
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise ValueError(f"{dst}: the output would overwrite the input")
    obj = load_checkpoint(src)
    prefix, backbone = extract_backbone_state_dict(obj, source=src)
    try:
        opts = d2_resnet_config(backbone)
    except NoBackboneError as e:
        raise NoBackboneError(f"{src}: {e}") from None
    state_dict = checkpoint_state_dict(obj, src)
    weights = convert_to_d2(backbone)
    save_d2_checkpoint(weights, dst)
    dropped = sorted(set(state_dict) - {prefix + k for k in backbone})
    return {"prefix": prefix, "weights": weights, "dropped": dropped, "d2_opts": opts}
