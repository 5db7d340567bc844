import torch

from ssl_lab.config import configurable
from ssl_lab.modeling.losses import MULTIVIEW_EMBEDDINGS
from ssl_lab.modeling.meta_arch import BYOL, META_ARCH_REGISTRY

from .monitor import embedding_collapse_metrics
from .regularizers import EmbeddingRegularizers, build_regularizers


@META_ARCH_REGISTRY.register()
class MSBReg(BYOL):
    """BYOL's online/target (EMA) pair on K views: L = L_MC + lambda_s L_S + lambda_b L_B.

    L_MC (MODEL.LOSS.NAME, normally MultiviewCentroidLoss) pulls each online prediction to
    the target centroid of the other views; the regularizers act on the online predictions.
    """

    LOSS_INPUTS = MULTIVIEW_EMBEDDINGS
    CROP_PAIRING = "global-global"  # L_MC's centroids are defined over K equal views; no local crops

    @configurable
    def __init__(self, *, regularizers: EmbeddingRegularizers, **kwargs):
        super().__init__(**kwargs)
        self.regularizers = regularizers

    @classmethod
    def from_config(cls, cfg):
        return {**super().from_config(cfg), "regularizers": build_regularizers(cfg)}

    def forward(self, views):
        """views: list of K tensors (N, 3, H, W) -> {"loss_centroid", "loss_singular", "loss_brownian"} and the
        collapse/embedding_* metrics of the online predictions."""
        shape = (len(views), views[0].shape[0])
        images = torch.cat(views)
        p = self.predictor(self.projector(self.backbone(images)))
        z = self.momentum_embed(images)
        metrics = embedding_collapse_metrics(p)
        p = p.unflatten(0, shape)
        return {"loss_centroid": self.loss(p, z.unflatten(0, shape)), **self.regularizers(p), **metrics}
