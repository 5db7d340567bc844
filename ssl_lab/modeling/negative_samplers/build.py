from ssl_lab.utils.registry import Registry

NEGATIVE_SAMPLER_REGISTRY = Registry("NEGATIVE_SAMPLER")
NEGATIVE_SAMPLER_REGISTRY.__doc__ = """
Registry for negative samplers: they pick which negatives each query sees,
(N, M) similarities -> (N, K). An entry is called as `entry(cfg)`: a class with a
`@configurable __init__`, `from_config(cls, cfg)` and
`negatives_per_query(M, source) -> K`, which refuses a K the M candidates cannot give
(contrastive methods call it at build time, with the M of their own candidates).
"""


def build_negative_sampler(cfg):
    """The sampler named by `cfg.MODEL.NEGATIVE_SAMPLER.NAME`."""
    return NEGATIVE_SAMPLER_REGISTRY.get(cfg.MODEL.NEGATIVE_SAMPLER.NAME)(cfg)
