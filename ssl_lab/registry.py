"""Every registry of ssl_lab, with the one way its entries are called.

An entry of any registry is called as `entry(cfg, *extra)`: `cfg` first, then the few arguments
that are not in the config (a head's input width, a dataset's split). A class entry has a
`@configurable __init__` (:func:`ssl_lab.config.configurable`) and `from_config(cls, cfg, *extra)`
returning its keyword arguments; a function entry takes the same arguments. The `build` function
beside each registry reads the entry's name from `key` and makes that call. docs/extend.md
describes each kind with an example.
"""

from typing import Callable, NamedTuple, Tuple

from ssl_lab.data import DATASET_REGISTRY, TRANSFORM_REGISTRY, build_dataset, build_train_transform
from ssl_lab.engine import HOOK_REGISTRY, build_extra_hooks
from ssl_lab.evaluation import EVALUATOR_REGISTRY, build_evaluators
from ssl_lab.modeling import (
    BACKBONE_REGISTRY,
    HEAD_REGISTRY,
    LOSS_REGISTRY,
    META_ARCH_REGISTRY,
    NEGATIVE_SAMPLER_REGISTRY,
    QUEUE_REGISTRY,
    build_backbone,
    build_head,
    build_loss,
    build_model,
    build_negative_sampler,
    build_queue,
)
from ssl_lab.utils.registry import Registry

__all__ = ["RegistryInfo", "REGISTRIES"]


class RegistryInfo(NamedTuple):
    """One registry: its entries are called as `entry(cfg, *extra)` and return `returns`."""

    kind: str
    registry: Registry
    build: Callable
    key: str  # the config key that names the entry
    extra: Tuple[str, ...]  # the arguments after cfg
    returns: str

    @property
    def signature(self) -> str:
        """The call of an entry, e.g. "(cfg, in_dim)"."""
        return f"({', '.join(('cfg',) + self.extra)})"


REGISTRIES = (
    RegistryInfo(
        "backbone", BACKBONE_REGISTRY, build_backbone, "MODEL.BACKBONE.NAME", (), "nn.Module (N, 3, H, W) -> (N, out_dim), with `out_dim`"
    ),
    RegistryInfo(
        "head",
        HEAD_REGISTRY,
        build_head,
        "MODEL.PROJECTOR.NAME, MODEL.PREDICTOR.NAME",
        ("in_dim",),
        "nn.Module (N, in_dim) -> (N, out_dim), with `out_dim`; its cfg is its own node (cfg.MODEL.PROJECTOR or cfg.MODEL.PREDICTOR)",
    ),
    RegistryInfo(
        "loss", LOSS_REGISTRY, build_loss, "MODEL.LOSS.NAME", (), "nn.Module with `INPUTS` (a kind of ssl_lab.modeling.losses) -> scalar"
    ),
    RegistryInfo(
        "queue",
        QUEUE_REGISTRY,
        build_queue,
        "MODEL.QUEUE.NAME",
        ("dim",),
        "nn.Module memory bank of `dim`-dim keys: negatives() (K, dim), enqueue(keys)",
    ),
    RegistryInfo(
        "negative sampler",
        NEGATIVE_SAMPLER_REGISTRY,
        build_negative_sampler,
        "MODEL.NEGATIVE_SAMPLER.NAME",
        (),
        "nn.Module (N, M) -> (N, K), with negatives_per_query(M, source) -> K",
    ),
    RegistryInfo(
        "meta-architecture",
        META_ARCH_REGISTRY,
        build_model,
        "MODEL.META_ARCHITECTURE",
        (),
        "nn.Module: forward(list of V (N, 3, H, W)) -> dict of losses and metrics, with `backbone`",
    ),
    RegistryInfo("hook", HOOK_REGISTRY, build_extra_hooks, "EXTRA_HOOKS", (), "HookBase"),
    RegistryInfo("evaluator", EVALUATOR_REGISTRY, build_evaluators, "TEST.EVALUATORS", (), "DatasetEvaluator on DATASETS.TEST[0]"),
    RegistryInfo(
        "dataset",
        DATASET_REGISTRY,
        build_dataset,
        "DATASETS.TRAIN, DATASETS.TEST (<family>_<split>)",
        ("split", "transform"),
        "Dataset of (transform(image), label), with `labels`",
    ),
    RegistryInfo(
        "augmentation recipe",
        TRANSFORM_REGISTRY,
        build_train_transform,
        "INPUT.AUGMENTATION",
        (),
        "list of per-view transforms (PIL image -> (3, H, W) tensor)",
    ),
)
