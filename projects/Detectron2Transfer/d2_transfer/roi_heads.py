"""MoCo's C4 box head: detectron2's res5 ROI head followed by one more norm layer."""

from .d2_compat import patch_detectron2

patch_detectron2()

from detectron2.layers import get_norm  # noqa: E402
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads  # noqa: E402


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """Res5ROIHeads whose res5 stage ends with a MODEL.RESNETS.NORM layer.

    MoCo's C4 transfer configs use it, so the freshly initialized box (and mask) predictors
    see normalized features.
    """

    @classmethod
    def _build_res5_block(cls, cfg):
        res5, out_channels = super()._build_res5_block(cfg)
        res5.add_module("norm", get_norm(cfg.MODEL.RESNETS.NORM, out_channels))
        return res5, out_channels
