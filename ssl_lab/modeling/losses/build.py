from fvcore.common.registry import Registry

LOSS_REGISTRY = Registry("LOSS")
LOSS_REGISTRY.__doc__ = """
Registry for training objectives. A registered class has a `from_config(cls, cfg)`
classmethod; contrastive losses take (pos (N,), neg (N, K)) cosine similarities.
"""


def build_loss(cfg):
    """Build the loss named by `cfg.MODEL.LOSS.NAME`."""
    return LOSS_REGISTRY.get(cfg.MODEL.LOSS.NAME).from_config(cfg)
