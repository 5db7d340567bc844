"""MSBReg (multi-view centroid, singular-value and Brownian losses) as an ssl_lab project.

Importing the package registers its losses, meta-architectures ("MSBReg", "Regularized") and
the "BackboneCollapseEval" hook; configs list it in IMPORTS, and `add_config(cfg)` adds the
MODEL.MSBREG / MODEL.REGULARIZED keys.
"""
from .config import add_config, add_msbreg_config
from .losses import (BrownianDiffusiveLoss, MultiviewCentroidLoss, SingularValueLoss, brownian_diffusive_loss,
                     multiview_centroid_loss, singular_value_loss)
from .hooks import BackboneCollapseEval, backbone_collapse_stats
from .meta_arch import MSBReg
from .monitor import CollapseMonitor, collapse_stats
from .regularized import Regularized, RegularizedMixin, regularized_class
from .regularizers import EmbeddingRegularizers, build_regularizers

__all__ = [
    "add_config", "add_msbreg_config", "BrownianDiffusiveLoss", "MultiviewCentroidLoss", "SingularValueLoss",
    "brownian_diffusive_loss", "multiview_centroid_loss", "singular_value_loss", "MSBReg",
    "BackboneCollapseEval", "backbone_collapse_stats", "CollapseMonitor", "collapse_stats", "Regularized",
    "RegularizedMixin", "regularized_class", "EmbeddingRegularizers", "build_regularizers",
]
