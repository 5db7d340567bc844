"""The project's additions to detectron2's config tree."""

from .d2_compat import patch_detectron2

patch_detectron2()

from detectron2.config import CfgNode as CN  # noqa: E402

from . import roi_heads  # noqa: E402,F401  (registers Res5ROIHeadsExtraNorm, which the C4 configs name)


def add_transfer_config(cfg) -> None:
    """Add DATASETS.SHAPES: where and how big the generated Shapes data is (as in ssl_lab)."""
    cfg.DATASETS.SHAPES = CN()
    # Shapes lives in <ROOT>/shapes; ROOT "" means $SSL_LAB_DATASETS, else ./datasets,
    # so pretraining and detection share one copy when sizes and seed agree.
    cfg.DATASETS.SHAPES.ROOT = ""
    cfg.DATASETS.SHAPES.IMAGE_SIZE = 64
    cfg.DATASETS.SHAPES.NUM_TRAIN = 4000
    cfg.DATASETS.SHAPES.NUM_VAL = 1000
    cfg.DATASETS.SHAPES.SEED = 0
