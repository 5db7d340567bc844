import torch
from fvcore.common.registry import Registry

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Registry for meta-architectures: the whole model of a method.

A meta-architecture has `from_config(cls, cfg)`; in training, `forward(views)`
takes a list of V tensors (N, 3, H, W) and returns a dict of scalar losses
(summed by the trainer). `backbone` is the network that is evaluated and
transferred. Models with a momentum encoder implement `momentum_update(m)`.
"""


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda if available else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg):
    """Build the meta-architecture `cfg.MODEL.META_ARCHITECTURE` and move it to `cfg.MODEL.DEVICE`."""
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE).from_config(cfg)
    return model.to(resolve_device(cfg.MODEL.DEVICE))
