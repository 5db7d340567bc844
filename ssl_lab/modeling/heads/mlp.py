from typing import Optional

from torch import nn

from ssl_lab.config import ConfigError, configurable
from ssl_lab.layers import get_norm_layer

from .build import HEAD_REGISTRY


@HEAD_REGISTRY.register()
class MLPHead(nn.Sequential):
    """Linear -> [BN] -> ReLU, repeated, then Linear -> [BN]: (N, in_dim) -> (N, out_dim).

    num_layers=1 is a single linear layer (MoCo v1's head). By default a linear layer
    followed by BN has no bias (the BN's shift replaces it); `hidden_bias` / `last_bias`
    set the hidden and the last linear layers' bias explicitly. `last_bn_shift=False` drops the
    last BN's learnable shift (beta), keeping its scale: SimCLR's head (`center=False`).
    """

    @configurable
    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        hidden_bn: bool = False,
        last_bn: bool = False,
        norm: str = "BN",
        hidden_bias: Optional[bool] = None,
        last_bias: Optional[bool] = None,
        last_bn_shift: bool = True,
    ):
        if num_layers < 1:
            raise ConfigError(f"A head needs NUM_LAYERS >= 1, got {num_layers}")
        norm_layer = get_norm_layer(norm, dims=1)
        layers = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=not hidden_bn if hidden_bias is None else hidden_bias))
            if hidden_bn:
                layers.append(norm_layer(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_bn if last_bias is None else last_bias))
        if last_bn:
            bn = norm_layer(out_dim)
            if not last_bn_shift:
                bn.register_parameter("bias", None)
            layers.append(bn)
        super().__init__(*layers)
        self.out_dim = out_dim

    @classmethod
    def from_config(cls, cfg, in_dim: int):
        """cfg: the head's own node (cfg.MODEL.PROJECTOR or cfg.MODEL.PREDICTOR)."""
        return {
            "in_dim": in_dim,
            "hidden_dim": cfg.HIDDEN_DIM,
            "out_dim": cfg.OUT_DIM,
            "num_layers": cfg.NUM_LAYERS,
            "hidden_bn": cfg.HIDDEN_BN,
            "last_bn": cfg.LAST_BN,
            "norm": cfg.NORM,
            "last_bn_shift": cfg.LAST_BN_SHIFT,
        }


@HEAD_REGISTRY.register()
class BYOLHead(MLPHead):
    """BYOL's projector and predictor, (N, in_dim) -> (N, out_dim):
    Linear(bias) -> BN -> ReLU -> Linear(no bias), as deepmind-research `byol/utils/networks.py` (MLP).
    """

    @configurable
    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, norm: str = "BN"):
        super().__init__(
            in_dim, hidden_dim, out_dim, num_layers=2, hidden_bn=True, last_bn=False, norm=norm, hidden_bias=True, last_bias=False
        )

    @classmethod
    def from_config(cls, cfg, in_dim: int):
        return {"in_dim": in_dim, "hidden_dim": cfg.HIDDEN_DIM, "out_dim": cfg.OUT_DIM, "norm": cfg.NORM}
