"""MSBReg (multi-view centroid, singular-value and Brownian losses) as an ssl_lab project.

Importing the package registers its losses, meta-architectures ("MSBReg", "Regularized") and
the "BackboneCollapse" evaluator; configs list it in IMPORTS, and `add_config(cfg)` adds the
MODEL.MSBREG / MODEL.REGULARIZED keys.
"""

from .config import add_config, add_msbreg_config
from .losses import (
    BrownianDiffusiveLoss,
    MultiviewCentroidLoss,
    SingularValueLoss,
    brownian_diffusive_loss,
    multiview_centroid_loss,
    singular_value_loss,
)
from .evaluator import BackboneCollapseEvaluator
from .meta_arch import MSBReg
from .monitor import collapse_stats, embedding_collapse_metrics
from .regularized import Regularized, RegularizedMixin, regularized_class
from .regularizers import EmbeddingRegularizers, build_regularizers

__all__ = [
    "add_config",
    "add_msbreg_config",
    "BrownianDiffusiveLoss",
    "MultiviewCentroidLoss",
    "SingularValueLoss",
    "brownian_diffusive_loss",
    "multiview_centroid_loss",
    "singular_value_loss",
    "MSBReg",
    "BackboneCollapseEvaluator",
    "collapse_stats",
    "embedding_collapse_metrics",
    "Regularized",
    "RegularizedMixin",
    "regularized_class",
    "EmbeddingRegularizers",
    "build_regularizers",
]
