from ssl_lab.utils.registry import Registry

QUEUE_REGISTRY = Registry("QUEUE")
QUEUE_REGISTRY.__doc__ = """
Registry for memory banks of negative keys. An entry is called as `entry(cfg, dim)`: a class
with a `@configurable __init__` and `from_config(cls, cfg, dim)`; `MODEL.QUEUE.NAME = ""` means
no memory bank.
"""


def build_queue(cfg, dim: int):
    """The memory bank named by `cfg.MODEL.QUEUE.NAME` for `dim`-dim keys, or None."""
    if not cfg.MODEL.QUEUE.NAME:
        return None
    return QUEUE_REGISTRY.get(cfg.MODEL.QUEUE.NAME)(cfg, dim)
