"""The one reader of backbone weights: MODEL.WEIGHTS, the model zoo, linear evaluation
and the detectron2 converter all go through it. ResNets below; timm backbones (ViTs, from timm's
own files, MoCo v3's `module.base_encoder.` checkpoints or ssl_lab's) in the section on timm.

Handles ssl_lab checkpoints (`model` with `backbone.` keys), official MoCo v1/v2 ones
(`state_dict` with `module.encoder_q.` keys), torchvision's supervised ResNets and any
ResNet state dict whose keys carry a prefix (`module.`, `encoder.`, `online_network.`...).
The prefix is found from the ResNet stem and first stage (`<prefix>conv1.weight`,
`<prefix>layer1.*`); when several encoders are present, the query/online/student one wins
over momentum/target/teacher copies. A file without such a backbone, or whose backbone
does not fit the model, is refused with a message naming its first keys and shapes.
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ssl_lab.utils.errors import MissingFileError, UserError
from ssl_lab.utils.file_io import PathManager

__all__ = [
    "FORMAT_PREFIXES",
    "ImportReport",
    "NoBackboneError",
    "UnreadableCheckpointError",
    "checkpoint_state_dict",
    "extract_backbone_state_dict",
    "find_backbone_prefix",
    "find_timm_prefix",
    "import_backbone_state_dict",
    "import_timm_state_dict",
    "is_momentum_copy",
    "is_resnet_key",
    "is_timm_target",
    "load_backbone_weights",
    "load_checkpoint",
    "MOMENTUM_COPY_WORDS",
    "PRETRAINING_HEADS",
]

logger = logging.getLogger(__name__)

# The prefix each catalog format must use.
FORMAT_PREFIXES = {"ssl_lab": "backbone.", "moco": "module.encoder_q.", "torchvision": "", "timm": "", "mocov3": "module.base_encoder."}
KNOWN_LAYOUTS = (
    "ssl_lab checkpoint {'model': {'backbone.conv1.weight': ...}}; "
    "official MoCo {'state_dict': {'module.encoder_q.conv1.weight': ...}}; "
    "torchvision ResNet {'conv1.weight': ..., 'layer1.0.conv1.weight': ...}; "
    "or one of these under another key prefix (e.g. 'online_network.')"
)
_STEM = "conv1.weight"
_IN_BLOCK = re.compile(r"layer\d+\.\d+\.$")
# The one list of the names of what pretraining adds around a backbone. A momentum/target copy of the
# encoder is named with one of MOMENTUM_COPY_WORDS (MoCo's encoder_k, ssl_lab's momentum_backbone and
# momentum_projector, BYOL's target, DINO's teacher, an EMA); PRETRAINING_HEADS are the method's modules
# that evaluation drops. Neither is where a backbone is imported or published from.
MOMENTUM_COPY_WORDS = ("encoder_k", "momentum", "target", "teacher", "ema")
PRETRAINING_HEADS = ("projector", "predictor", "queue")
_HEADS = ("fc.",)
# Parameter/buffer names of a torchvision ResNet, without fc.
RESNET_STEM = re.compile(r"(conv1|bn1)\.(\w+)")
RESNET_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])\.(\w+)")


class NoBackboneError(UserError, ValueError):
    """The checkpoint holds no usable torchvision-named ResNet, or one that does not fit the model."""


class UnreadableCheckpointError(UserError, OSError):
    """The file exists but is not a torch checkpoint."""


def is_momentum_copy(name: str) -> bool:
    """Whether a module name or key prefix names a momentum/target copy (see MOMENTUM_COPY_WORDS)."""
    return any(word in name for word in MOMENTUM_COPY_WORDS)


def is_resnet_key(name: str) -> bool:
    return bool(RESNET_STEM.fullmatch(name) or RESNET_BLOCK.fullmatch(name))


def _first_entries(state_dict: Mapping, n: int = 5) -> str:
    """'key (shape), ...' of the first `n` entries, to show what a file holds."""

    def describe(key, value):
        shape = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
        return f"{key} {shape}"

    items = [describe(k, v) for k, v in list(state_dict.items())[:n]]
    more = f", ... ({len(state_dict)} entries)" if len(state_dict) > n else ""
    return ", ".join(items) + more


def _no_backbone(source: str, state_dict: Mapping, why: str) -> NoBackboneError:
    return NoBackboneError(f"{source}: {why}.\n  It holds: {_first_entries(state_dict) or 'nothing'}\n  Known layouts: {KNOWN_LAYOUTS}")


# torch.save writes a zip archive (PyTorch >= 1.6) or, in the legacy format, a pickle (protocol 2+).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _unreadable_reason(head: bytes, err: Exception) -> str:
    """Why torch.load failed, in our words (torch's weights_only message suggests unsafe loading)."""
    if not head.startswith(_CHECKPOINT_MAGIC):
        kind = "a text file" if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "another format"
        return f"it is {kind}, starting with {head[:32]!r}; a torch checkpoint is a zip archive or a pickle"
    found = _UNSUPPORTED_GLOBAL.search(str(err))
    if found:
        return (
            f"it holds a Python object of type {found.group(1)}, which ssl_lab does not unpickle "
            f"(only tensors and plain containers are loaded)"
        )
    reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"truncated or damaged ({type(err).__name__}: {reason[:200]})"


def load_checkpoint(path: str):
    """torch.load (weights only, to CPU) of a local path, URL or `ssl_lab://<name>`."""
    head = b""
    try:
        with PathManager.open(path, "rb") as f:
            head = f.read(64)
            f.seek(0)
            return torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableCheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    except UserError:
        raise
    except Exception as e:  # torch.load raises many types for a file it cannot parse
        raise UnreadableCheckpointError(f"{path}: not a readable torch checkpoint: {_unreadable_reason(head, e)}") from None


def checkpoint_state_dict(obj, source: str = "checkpoint") -> Mapping:
    """The ResNet state dict in a loaded checkpoint: itself, or a nested one such as
    ['model'] / ['state_dict'] holding '<prefix>conv1.weight'."""
    if not isinstance(obj, Mapping):
        raise NoBackboneError(f"{source}: expected a checkpoint dict, got {type(obj).__name__}.\n  Known layouts: {KNOWN_LAYOUTS}")
    for candidate in (obj, *(v for v in obj.values() if isinstance(v, Mapping))):
        if any(isinstance(k, str) and k.endswith(_STEM) for k in candidate):
            return candidate
    nested = next((v for v in obj.values() if isinstance(v, Mapping)), obj)
    raise _no_backbone(source, nested, "no ResNet weights ('<prefix>conv1.weight') at the top level or one level down")


def find_backbone_prefix(state_dict: Mapping, source: str = "checkpoint") -> str:
    """The key prefix of the main ResNet in `state_dict`, e.g. 'module.encoder_q.' or ''.

    A prefix counts when it holds a stem (`conv1.weight`) and a first stage (`layer1.*`).
    """
    stems = {k[: -len(_STEM)] for k in state_dict if isinstance(k, str) and k.endswith(_STEM) and not _IN_BLOCK.search(k[: -len(_STEM)])}
    prefixes = [p for p in stems if any(isinstance(k, str) and k.startswith(p + "layer1.") for k in state_dict)]
    if not prefixes:
        raise _no_backbone(source, state_dict, "no ResNet backbone ('<prefix>conv1.weight' with '<prefix>layer1.*')")

    def rank(prefix):
        secondary = is_momentum_copy(prefix)
        return secondary, -sum(k.startswith(prefix) for k in state_dict), len(prefix)

    return min(prefixes, key=rank)


def extract_backbone_state_dict(obj, source: str = "checkpoint") -> Tuple[str, Dict[str, torch.Tensor]]:
    """
    Args:
        obj: a loaded checkpoint (ssl_lab, official MoCo, ...) or a torchvision state dict.

    Returns:
        the prefix the backbone was found under, and the query/online ResNet's state dict
        with torchvision names ("conv1.weight", "layer1.0.bn1.running_mean", ...), without fc.
    """
    state_dict = checkpoint_state_dict(obj, source)
    prefix = find_backbone_prefix(state_dict, source)
    backbone = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix) and is_resnet_key(k[len(prefix) :])}
    bad = [
        f"{k} {tuple(v.shape) if hasattr(v, 'shape') else type(v).__name__}"
        for k, v in backbone.items()
        if not isinstance(v, torch.Tensor) or (k.endswith(".weight") and "conv" in k and v.dim() != 4)
    ][:5]
    if bad:
        raise _no_backbone(source, state_dict, f"backbone entries are not ResNet tensors: {', '.join(bad)}")
    return prefix, backbone


@dataclass
class ImportReport:
    """What an import did: backbone keys loaded, absent, unused, or of the wrong shape; and the
    other modules (heads, classifier) loaded from an ssl_lab checkpoint."""

    source: str
    prefix: str
    matched: List[str]
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]
    dropped: int
    other_modules: List[str] = field(default_factory=list)

    def __str__(self):
        lines = [
            f"Loaded {len(self.matched)} backbone tensors from {self.source} (prefix '{self.prefix}'); "
            f"ignored {self.dropped} other entries (heads, momentum encoders, queues)."
        ]
        for what in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, what)
            if keys:
                shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
                lines.append(f"{len(keys)} {what} keys: {shown}")
        return "\n".join(lines)


# timm backbones. TimmBackbone keeps its timm model as `model`, so its keys are "model." + timm's keys. A
# file holds that model under a prefix: "" (timm's own state dict), "module.base_encoder." (MoCo v3, whose
# momentum copy "module.momentum_encoder." loses to it), "backbone.model." (ssl_lab). Its classifier or
# projection head is dropped.
TIMM_MODULE = "model."
_TIMM_HEADS = ("head.", "fc.", "classifier.")


def is_timm_target(target: Mapping) -> bool:
    """Whether the backbone state dict `target` is a TimmBackbone's."""
    return bool(target) and all(k.startswith(TIMM_MODULE) for k in target)


def find_timm_prefix(state_dict: Mapping, timm_keys: List[str], source: str = "checkpoint") -> str:
    """The prefix under which `state_dict` holds the timm model whose own keys are `timm_keys`: of the
    prefixes before its first key, the one holding most of its keys, an online encoder before a
    momentum/target copy."""
    anchor = timm_keys[0]
    prefixes = {k[: -len(anchor)] for k in state_dict if isinstance(k, str) and k.endswith(anchor)}
    prefixes = [p for p in prefixes if not p or p.endswith(".")]

    def held(prefix):
        return sum(prefix + k in state_dict for k in timm_keys)

    best = min(prefixes, key=lambda p: (is_momentum_copy(p), -held(p), len(p)), default=None)
    if best is None or 2 * held(best) < len(timm_keys):
        raise _no_backbone(
            source,
            state_dict,
            f"no timm model with this backbone's keys ('<prefix>{anchor}' and "
            f"at least half of its {len(timm_keys)} keys under that prefix)",
        )
    return best


def _timm_state_dict(obj, anchor: str, source: str) -> Mapping:
    """The state dict in a loaded checkpoint holding '<prefix><anchor>': itself or one level down."""
    if isinstance(obj, Mapping):
        for candidate in (obj, *(v for v in obj.values() if isinstance(v, Mapping))):
            if any(isinstance(k, str) and k.endswith(anchor) for k in candidate):
                return candidate
    found = obj if isinstance(obj, Mapping) else {}
    raise _no_backbone(source, found, f"no timm model ('<prefix>{anchor}') at the top level or one level down")


def import_timm_state_dict(
    checkpoint, target: Dict[str, torch.Tensor], fmt: Optional[str] = None, source: str = "checkpoint"
) -> Tuple[Dict[str, torch.Tensor], ImportReport]:
    """:func:`import_backbone_state_dict` for a TimmBackbone's `target` ("model." + timm keys)."""
    timm_keys = [k[len(TIMM_MODULE) :] for k in target]
    state_dict = _timm_state_dict(checkpoint, timm_keys[0], source)
    if fmt is None:
        prefix = find_timm_prefix(state_dict, timm_keys, source)
    else:
        prefix = FORMAT_PREFIXES[fmt] + (TIMM_MODULE if fmt == "ssl_lab" else "")
        if prefix + timm_keys[0] not in state_dict:
            raise _no_backbone(source, state_dict, f"not in '{fmt}' format: no key '{prefix}{timm_keys[0]}'")
    return _convert(
        state_dict,
        target,
        prefix,
        source,
        rename=lambda name: TIMM_MODULE + name,
        is_head=lambda name: TIMM_MODULE + name not in target and name.startswith(_TIMM_HEADS),
    )


def import_backbone_state_dict(
    checkpoint: Mapping, target: Dict[str, torch.Tensor], fmt: Optional[str] = None, source: str = "checkpoint"
) -> Tuple[Dict[str, torch.Tensor], ImportReport]:
    """Convert `checkpoint` to the keys of the backbone state dict `target`.

    Args:
        checkpoint: a loaded checkpoint file (a state dict or a dict containing one).
        target: the backbone's `state_dict()`; gives the valid keys and shapes.
        fmt: a catalog format ('ssl_lab', 'moco', 'torchvision', 'timm', 'mocov3') fixing the prefix;
            None detects it.
        source: names the checkpoint in the report.
    Returns:
        the backbone state dict (only keys of `target` with matching shapes) and the report.
    """
    if is_timm_target(target):
        return import_timm_state_dict(checkpoint, target, fmt, source)
    state_dict = checkpoint_state_dict(checkpoint, source)
    prefix = find_backbone_prefix(state_dict, source) if fmt is None else FORMAT_PREFIXES[fmt]
    if prefix + _STEM not in state_dict:
        raise _no_backbone(source, state_dict, f"not in '{fmt}' format: no key '{prefix}{_STEM}'")
    return _convert(state_dict, target, prefix, source, rename=lambda name: name, is_head=lambda name: name.startswith(_HEADS))


def _convert(state_dict, target, prefix: str, source: str, rename, is_head):
    """The tensors of `state_dict` under `prefix` renamed (rename(key without prefix)) to keys of
    `target`: heads (is_head) and keys outside the prefix are dropped, the rest sorted into loaded,
    unexpected and shape-mismatched. Returns (converted state dict, ImportReport)."""
    converted, unexpected, mismatched, dropped = {}, [], [], 0
    for key, value in state_dict.items():
        stripped = key[len(prefix) :]
        name = rename(stripped)
        if not key.startswith(prefix) or is_head(stripped):
            dropped += 1
        elif name not in target:
            unexpected.append(name)
        elif tuple(value.shape) != tuple(target[name].shape):
            mismatched.append(f"{name} {tuple(value.shape)} vs {tuple(target[name].shape)}")
        else:
            converted[name] = value
    # BN batch counters carry no learned state; old checkpoints lack them.
    missing = [k for k in target if k not in converted and not k.endswith("num_batches_tracked")]
    return converted, ImportReport(source, prefix, sorted(converted), missing, unexpected, mismatched, dropped)


def _other_module_tensors(saved: Mapping, target: Mapping, path: str, allow_partial: bool) -> Dict[str, torch.Tensor]:
    """The tensors of `saved` (an ssl_lab checkpoint's model) for `target`'s modules other than the
    backbone. One of another shape refuses the load unless `allow_partial` (then it is skipped)."""
    shared = {k: v for k, v in saved.items() if not k.startswith("backbone.") and k in target}
    mismatched = [
        f"{k}: {tuple(v.shape)} in the file, {tuple(target[k].shape)} in the model"
        for k, v in shared.items()
        if tuple(v.shape) != tuple(target[k].shape)
    ]
    if mismatched and not allow_partial:
        shown = "\n  ".join(mismatched[:8]) + (f"\n  ... ({len(mismatched)} in all)" if len(mismatched) > 8 else "")
        raise NoBackboneError(
            f"The weights in {path} do not fit the model: {len(mismatched)} tensors have another "
            f"shape; nothing was loaded.\n  {shown}\nMatch the config to the checkpoint (e.g. "
            f"MODEL.PROJECTOR.*), or set MODEL.WEIGHTS_ALLOW_PARTIAL True to keep the "
            f"initialization of these tensors."
        )
    for line in mismatched:
        logger.warning(f"MODEL.WEIGHTS_ALLOW_PARTIAL: kept the initialization of {line}")
    return {k: v for k, v in shared.items() if tuple(v.shape) == tuple(target[k].shape)}


def load_backbone_weights(
    model: nn.Module, path: str, fmt: Optional[str] = None, other_modules: bool = False, allow_partial: bool = False
) -> ImportReport:
    """Load the ResNet weights in `path` (file, URL or `ssl_lab://<name>`) into `model.backbone`.

    `model` may also be the backbone itself. Nothing is loaded unless every backbone
    parameter is matched: a missing tensor or one of another shape (e.g. a ResNet-18 file
    for a ResNet-50) raises NoBackboneError with the report. With `other_modules`, an
    ssl_lab checkpoint also fills the other modules of `model` (heads, momentum encoder,
    classifier) whose names match; a tensor of another shape there refuses the load too,
    unless `allow_partial` (then it keeps its initialization). The report's `other_modules`
    names the modules filled.
    """
    backbone = getattr(model, "backbone", model)
    checkpoint = load_checkpoint(path)
    converted, report = import_backbone_state_dict(checkpoint, backbone.state_dict(), fmt, source=path)
    if report.missing or report.mismatched:
        raise NoBackboneError(f"The weights in {path} do not fit the backbone ({type(backbone).__name__}); nothing was loaded.\n{report}")
    saved = checkpoint.get("model") if isinstance(checkpoint, Mapping) else None
    if other_modules and backbone is not model and isinstance(saved, Mapping):
        others = _other_module_tensors(saved, model.state_dict(), path, allow_partial)
        model.load_state_dict(others, strict=False)
        report.other_modules = sorted({k.split(".")[0] for k in others})
        logger.info(f"Loaded {len(others)} tensors of other modules ({', '.join(report.other_modules) or 'none'}) from {path}")
    backbone.load_state_dict(converted, strict=False)
    (logger.warning if report.unexpected else logger.info)(str(report))
    return report
