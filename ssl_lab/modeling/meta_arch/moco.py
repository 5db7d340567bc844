import torch.nn.functional as F
from torch import nn

from ..backbones import build_backbone
from ..heads import build_projector
from ..losses import build_loss
from ..momentum import MomentumEncoderMixin
from ..queues import build_queue
from ..samplers import build_negative_sampler
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class MoCo(MomentumEncoderMixin, nn.Module):
    """MoCo v1/v2 (the head, temperature and augmentation differ by config).

    Query q = normalize(g(f(view 1))); key k = normalize(g_k(f_k(view 2))) from the
    momentum encoder, with shuffle-BN across ranks. Negatives come from the queue.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, queue: nn.Module, loss: nn.Module,
                 negative_sampler: nn.Module, shuffle_bn: bool = True):
        super().__init__()
        if queue is None:
            raise ValueError("MoCo needs a memory bank: set MODEL.QUEUE.NAME (e.g. MoCoQueue)")
        self.backbone = backbone
        self.projector = projector
        self.init_momentum_encoder()
        self.queue = queue
        self.loss = loss
        self.negative_sampler = negative_sampler
        self.shuffle_bn = shuffle_bn

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        projector = build_projector(cfg, backbone.out_dim)
        return cls(backbone=backbone, projector=projector, queue=build_queue(cfg, projector.out_dim),
                   loss=build_loss(cfg),
                   negative_sampler=build_negative_sampler(cfg, cfg.MODEL.QUEUE.SIZE, "keys of the queue (MODEL.QUEUE.SIZE)"),
                   shuffle_bn=cfg.MODEL.MOCO.SHUFFLE_BN)

    def forward(self, views):
        q = F.normalize(self.projector(self.backbone(views[0])), dim=1)
        k = self.encode_keys(views[1], self.shuffle_bn)
        pos = (q * k).sum(dim=1)
        neg = self.negative_sampler(q @ self.queue.negatives().T)
        loss = self.loss(pos, neg)
        self.queue.enqueue(k)
        return {"loss_contrastive": loss}
