import torch.nn.functional as F

from ssl_lab.config import ConfigError, configurable

from ..momentum import MomentumEncoderMixin
from ..queues import build_queue
from .base import ContrastiveMethod
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class MoCo(MomentumEncoderMixin, ContrastiveMethod):
    """MoCo v1/v2 (the head, temperature and augmentation differ by config).

    Query q = normalize(g(f(view 1))); key k = normalize(g_k(f_k(view 2))) from the
    momentum encoder, with shuffle-BN across ranks. Negatives come from the queue.
    """

    @configurable
    def __init__(self, *, queue, shuffle_bn: bool = True, **kwargs):
        if queue is None:
            raise ConfigError("MoCo needs a memory bank: set MODEL.QUEUE.NAME (e.g. MoCoQueue)")
        super().__init__(**kwargs)
        self.queue = queue
        self.shuffle_bn = shuffle_bn

    @classmethod
    def negative_candidates(cls, cfg):
        return cfg.MODEL.QUEUE.SIZE, f"the queue (MODEL.QUEUE.SIZE = {cfg.MODEL.QUEUE.SIZE})"

    @classmethod
    def from_config(cls, cfg):
        kwargs = super().from_config(cfg)
        return {**kwargs, "queue": build_queue(cfg, kwargs["projector"].out_dim), "shuffle_bn": cfg.MODEL.MOCO.SHUFFLE_BN}

    def forward(self, views):
        q = F.normalize(self.projector(self.backbone(views[0])), dim=1)
        k = self.encode_keys(views[1], self.shuffle_bn)
        pos = (q * k).sum(dim=1)
        neg = self.negative_sampler(q @ self.queue.negatives().T)
        loss = self.loss(pos, neg)
        self.queue.enqueue(k)
        return {"loss_contrastive": loss}
