from fvcore.common.registry import Registry

NEGATIVE_SAMPLER_REGISTRY = Registry("NEGATIVE_SAMPLER")
NEGATIVE_SAMPLER_REGISTRY.__doc__ = """
Registry for negative samplers: they pick which negatives each query sees,
(N, M) similarities -> (N, K). Registered classes have `from_config(cls, cfg)`.
"""


def build_negative_sampler(cfg):
    """The sampler named by `cfg.MODEL.NEGATIVE_SAMPLER.NAME`."""
    return NEGATIVE_SAMPLER_REGISTRY.get(cfg.MODEL.NEGATIVE_SAMPLER.NAME).from_config(cfg)
