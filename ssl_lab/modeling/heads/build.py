from ssl_lab.utils.registry import Registry

HEAD_REGISTRY = Registry("HEAD")
HEAD_REGISTRY.__doc__ = """
Registry for projector/predictor heads: (N, in_dim) -> (N, out_dim).
An entry is called as `entry(node, in_dim)`: `node` is the head's own config node
(`cfg.MODEL.PROJECTOR` or `cfg.MODEL.PREDICTOR`), the `cfg` of its `from_config(cls, cfg, in_dim)`.
"""


def build_head(node, in_dim: int):
    """The head named by `node.NAME`, reading `node`, for (N, in_dim) inputs."""
    return HEAD_REGISTRY.get(node.NAME)(node, in_dim)


def build_projector(cfg, in_dim: int):
    """The projector g(.) from `cfg.MODEL.PROJECTOR`."""
    return build_head(cfg.MODEL.PROJECTOR, in_dim)


def build_predictor(cfg, in_dim: int):
    """The predictor q(.) from `cfg.MODEL.PREDICTOR`."""
    return build_head(cfg.MODEL.PREDICTOR, in_dim)
