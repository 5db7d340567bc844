from ssl_lab.utils.registry import Registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Registry for backbones. A backbone maps images (N, 3, H, W) to pooled features
(N, out_dim) and exposes `out_dim`. An entry is called as `entry(cfg)`: a class with a
`@configurable __init__` and `from_config(cls, cfg)`.
"""


def build_backbone(cfg):
    """Build the backbone named by `cfg.MODEL.BACKBONE.NAME`."""
    return BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg)
