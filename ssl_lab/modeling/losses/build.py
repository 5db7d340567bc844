from ssl_lab.config import ConfigError
from ssl_lab.utils.registry import Registry

LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = """
Registry for training objectives. An entry is called as `entry(cfg)`: a class with a
`@configurable __init__`, `from_config(cls, cfg)` and a class attribute `INPUTS` naming what its
forward takes (one of the kinds below); a meta-architecture states the kind it calls its loss with
(`LOSS_INPUTS`).
"""

# The kinds of loss inputs.
SIMILARITIES = "similarities (pos (N,), neg (N, K))"
PAIRED_EMBEDDINGS = "paired embeddings (p (N, D), z (N, D))"
MULTIVIEW_EMBEDDINGS = "multi-view embeddings (p (K, N, D), z (K, N, D))"
EMBEDDINGS = "embeddings (p (K, N, D)) alone"
GLOBAL_KEYS = "queries and the global batch of keys (q (N, D), keys (W * N, D), rank)"


def compatible_losses(inputs: str) -> list:
    """Names of the registered losses that take `inputs`."""
    return sorted(name for name, loss_cls in LOSS_REGISTRY if getattr(loss_cls, "INPUTS", None) == inputs)


def build_loss(cfg, inputs: str):
    """Build the loss named by `cfg.MODEL.LOSS.NAME`; it must take `inputs` (what the method passes)."""
    name = cfg.MODEL.LOSS.NAME
    loss_cls = LOSS_REGISTRY.get(name)
    takes = getattr(loss_cls, "INPUTS", "unknown inputs")
    if takes != inputs:
        raise ConfigError(
            f"MODEL.LOSS.NAME '{name}' takes {takes}, but {cfg.MODEL.META_ARCHITECTURE} calls its loss with "
            f"{inputs}. Compatible losses: {', '.join(compatible_losses(inputs)) or 'none registered'}"
        )
    return loss_cls(cfg)
