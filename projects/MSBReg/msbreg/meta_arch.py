import torch

from ssl_lab.modeling.backbones import build_backbone
from ssl_lab.modeling.heads import build_predictor, build_projector
from ssl_lab.modeling.losses import build_loss
from ssl_lab.modeling.meta_arch import BYOL, META_ARCH_REGISTRY

from .monitor import CollapseMonitor
from .regularizers import EmbeddingRegularizers, build_regularizers


@META_ARCH_REGISTRY.register()
class MSBReg(BYOL):
    """BYOL's online/target (EMA) pair on K views: L = L_MC + lambda_s L_S + lambda_b L_B.

    L_MC (MODEL.LOSS.NAME, normally MultiviewCentroidLoss) pulls each online prediction to
    the target centroid of the other views; the regularizers act on the online predictions.
    """

    def __init__(self, backbone, projector, predictor, loss, regularizers: EmbeddingRegularizers,
                 monitor: CollapseMonitor):
        super().__init__(backbone, projector, predictor, loss)
        self.regularizers = regularizers
        self.monitor = monitor

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        projector = build_projector(cfg, backbone.out_dim)
        return cls(backbone=backbone, projector=projector, predictor=build_predictor(cfg, projector.out_dim),
                   loss=build_loss(cfg), regularizers=build_regularizers(cfg), monitor=CollapseMonitor(cfg.LOG_PERIOD))

    def forward(self, views):
        """views: list of K tensors (N, 3, H, W) -> {"loss_centroid", "loss_singular", "loss_brownian"}."""
        shape = (len(views), views[0].shape[0])
        images = torch.cat(views)
        p = self.predictor(self.projector(self.backbone(images)))
        z = self.momentum_embed(images)
        self.monitor(p)
        p = p.unflatten(0, shape)
        return {"loss_centroid": self.loss(p, z.unflatten(0, shape)), **self.regularizers(p)}
