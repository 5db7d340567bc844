from ssl_lab.utils.device import resolve_device
from ssl_lab.utils.registry import Registry

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Registry for meta-architectures: the whole model of a method.

An entry is called as `entry(cfg)` and returns the model: a class whose `@configurable __init__`
takes the keyword arguments that `from_config(cls, cfg)` returns. In
training, `forward(views)` takes a list of V tensors (N, 3, H, W) and returns a dict of
scalars: the trainer sums those whose key starts with "loss" and logs the others as metrics.
`backbone` is the network that is evaluated and transferred. Models with a momentum encoder
implement `momentum_update(m)`. `LOSS_INPUTS` names the inputs it calls its loss with.
"""


def build_model(cfg):
    """Build the meta-architecture `cfg.MODEL.META_ARCHITECTURE` and move it to `cfg.MODEL.DEVICE`."""
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return model.to(resolve_device(cfg.MODEL.DEVICE))
