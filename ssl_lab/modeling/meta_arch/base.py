"""What the meta-architectures share: the online encoder chain, and the base of contrastive methods.

Every method's `__init__` is `@configurable`: `from_config(cfg)` returns its keyword arguments,
and a method built on another extends them with `{**super().from_config(cfg), ...}`.
"""

from typing import Tuple

from torch import nn

from ssl_lab.config import configurable

from ..backbones import build_backbone
from ..heads import build_predictor, build_projector
from ..losses import SIMILARITIES, build_loss
from ..negative_samplers import build_negative_sampler


def online_encoder_from_config(cfg, predictor: bool = False) -> dict:
    """{"backbone", "projector"} (and "predictor") of cfg.MODEL, each head sized to the module before it."""
    backbone = build_backbone(cfg)
    modules = {"backbone": backbone, "projector": build_projector(cfg, backbone.out_dim)}
    if predictor:
        modules["predictor"] = build_predictor(cfg, modules["projector"].out_dim)
    return modules


class EmbeddingMethod(nn.Module):
    """Base of the self-supervised methods: the online encoder backbone -> projector (-> predictor
    with HAS_PREDICTOR) and a loss that takes LOSS_INPUTS (checked when the loss is built)."""

    LOSS_INPUTS = None
    HAS_PREDICTOR = False
    # "global-global" or "global-local" (see .crops): whether INPUT.MULTI_CROP's local crops are taken.
    CROP_PAIRING = "global-global"

    @configurable
    def __init__(
        self, *, backbone: nn.Module, projector: nn.Module, loss: nn.Module, predictor: nn.Module = None, num_local_crops: int = 0
    ):
        super().__init__()
        if num_local_crops and self.CROP_PAIRING != "global-local":
            raise ValueError(
                f"{type(self).__name__} pairs its global views only ({self.CROP_PAIRING}): set "
                f"INPUT.MULTI_CROP.NUM_LOCAL 0, or use a method whose CROP_PAIRING is global-local "
                f"(BYOL, SiMo)"
            )
        self.num_local_crops = num_local_crops
        self.backbone = backbone
        self.projector = projector
        if predictor is not None:
            self.predictor = predictor
        self.loss = loss

    @classmethod
    def from_config(cls, cfg):
        return {
            **online_encoder_from_config(cfg, cls.HAS_PREDICTOR),
            "loss": build_loss(cfg, cls.LOSS_INPUTS),
            "num_local_crops": cfg.INPUT.MULTI_CROP.NUM_LOCAL,
        }

    def split_crops(self, views):
        """views (list of (N, 3, H, W)) -> (global views, local crops): the last `num_local_crops` are local."""
        cut = len(views) - self.num_local_crops
        return views[:cut], views[cut:]


class ContrastiveMethod(EmbeddingMethod):
    """Base of methods that score each query's positive against K negatives.

    `negative_sampler` picks K of the M candidate negatives of each query, and `loss` maps
    (pos (N,), neg (N, K)) similarities to a scalar. A subclass implements `forward` and
    `negative_candidates(cfg)`.
    """

    LOSS_INPUTS = SIMILARITIES

    @configurable
    def __init__(self, *, negative_sampler: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.negative_sampler = negative_sampler

    @classmethod
    def negative_candidates(cls, cfg) -> Tuple[int, str]:
        """(M, where they come from): the candidate negatives of each query under `cfg`."""
        raise NotImplementedError

    @classmethod
    def negatives_per_query(cls, cfg, negative_sampler=None) -> int:
        """K, the negatives each query sees; raises ValueError if the sampler asks for more than M."""
        candidates, source = cls.negative_candidates(cfg)
        sampler = negative_sampler or cls.build_negative_sampler(cfg)
        return sampler.negatives_per_query(candidates, source)

    @classmethod
    def build_negative_sampler(cls, cfg) -> nn.Module:
        """The sampler of MODEL.NEGATIVE_SAMPLER; a method may adapt it to its candidates."""
        return build_negative_sampler(cfg)

    @classmethod
    def from_config(cls, cfg):
        negative_sampler = cls.build_negative_sampler(cfg)
        cls.negatives_per_query(cfg, negative_sampler)
        return {**super().from_config(cfg), "negative_sampler": negative_sampler}
