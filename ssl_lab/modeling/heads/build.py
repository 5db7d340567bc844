from ssl_lab.utils.registry import Registry

HEAD_REGISTRY = Registry("HEAD")
HEAD_REGISTRY.__doc__ = """
Registry for projector/predictor heads: (N, in_dim) -> (N, out_dim).
Registered classes have `from_config(cls, node, in_dim)` reading one head node
(`cfg.MODEL.PROJECTOR` or `cfg.MODEL.PREDICTOR`).
"""


def build_head(node, in_dim: int):
    return HEAD_REGISTRY.get(node.NAME).from_config(node, in_dim)


def build_projector(cfg, in_dim: int):
    """The projector g(.) from `cfg.MODEL.PROJECTOR`."""
    return build_head(cfg.MODEL.PROJECTOR, in_dim)


def build_predictor(cfg, in_dim: int):
    """The predictor q(.) from `cfg.MODEL.PREDICTOR`."""
    return build_head(cfg.MODEL.PREDICTOR, in_dim)
