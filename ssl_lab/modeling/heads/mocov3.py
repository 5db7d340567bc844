from ssl_lab.config import configurable

from .build import HEAD_REGISTRY
from .mlp import MLPHead


@HEAD_REGISTRY.register()
class MoCoV3Head(MLPHead):
    """MoCo v3's projector and predictor (moco-v3 `moco/builder.py`, `_build_mlp`), (N, in_dim) -> (N, out_dim):
    NUM_LAYERS linear layers without bias, each hidden one followed by BN and ReLU; with `last_bn`, a BN
    without affine parameters after the last ("we further removed gamma in BN").
    """

    @configurable
    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int, last_bn: bool = True, norm: str = "BN"):
        super().__init__(
            in_dim,
            hidden_dim,
            out_dim,
            num_layers=num_layers,
            hidden_bn=True,
            last_bn=last_bn,
            norm=norm,
            hidden_bias=False,
            last_bias=False,
        )
        if last_bn:
            self[-1] = type(self[-1])(out_dim, affine=False)

    @classmethod
    def from_config(cls, cfg, in_dim: int):
        return {
            "in_dim": in_dim,
            "hidden_dim": cfg.HIDDEN_DIM,
            "out_dim": cfg.OUT_DIM,
            "num_layers": cfg.NUM_LAYERS,
            "last_bn": cfg.LAST_BN,
            "norm": cfg.NORM,
        }
