"""The SiMo meta-architecture: a momentum key encoder, negatives from the current global batch."""

import logging

import torch
import torch.nn.functional as F

from ssl_lab.config import ConfigError, configurable
from ssl_lab.modeling.meta_arch import META_ARCH_REGISTRY, ContrastiveMethod
from ssl_lab.modeling.momentum import MomentumEncoderMixin
from ssl_lab.modeling.negative_samplers import RandomNegatives, build_negative_sampler
from ssl_lab.utils import comm

logger = logging.getLogger("ssl_lab")


def drop_own_keys(sim: torch.Tensor, offset: int) -> torch.Tensor:
    """Each query's similarities with the global batch of keys, without its own key.

    Args:
        sim: (N, M) similarities of this rank's N queries with the M = W * N keys of all ranks.
        offset: the column of query 0's own key (rank * N).
    Returns:
        (N, M - 1): row i without column offset + i, the other columns in their order.
    """
    n, m = sim.shape
    rows = torch.arange(n, device=sim.device)
    keep = torch.ones_like(sim, dtype=torch.bool)
    keep[rows, offset + rows] = False
    return sim[keep].view(n, m - 1)


@META_ARCH_REGISTRY.register()
class SiMo(MomentumEncoderMixin, ContrastiveMethod):
    """SiMo: MoCo v2 whose negatives are the other keys of the current global batch (no queue).

    q = normalize(g(f(view 1))); k = normalize(g_k(f_k(view 2))), f_k and g_k the momentum (EMA)
    copies of f and g. The keys of all ranks are gathered without gradient; each query's negatives
    are all of them but its own key, of which `negative_sampler` keeps K (shared or per query).
    The loss is one-directional (view 1 -> queries, view 2 -> keys). BN is synced across ranks by
    config (SyncBN); `shuffle_bn` shuffles the key encoder's batch instead (an ablation).
    Local crops (INPUT.MULTI_CROP) are extra queries against view 2's keys ("global-local").
    """

    CROP_PAIRING = "global-local"

    @configurable
    def __init__(self, *, shuffle_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.shuffle_bn = shuffle_bn

    @classmethod
    def build_negative_sampler(cls, cfg):
        """The sampler over the N - 1 other keys of a global micro-batch of
        N = SOLVER.IMS_PER_BATCH / SOLVER.GRAD_ACCUM_STEPS (gradient accumulation splits the batch).

        A K above N - 1 is capped to N - 1, as the official code does (SelfSup
        `examples/simo/.../simo.py` draws `randperm(N - 1)[:K]`: its K = 256 run at N = 256
        sees the 255 other keys); the cap is logged, not raised.
        """
        node = cfg.MODEL.NEGATIVE_SAMPLER
        other_keys, source = cls.negative_candidates(cfg)
        if node.NAME != "RandomNegatives" or node.NUM_NEGATIVES <= other_keys:
            return build_negative_sampler(cfg)
        logger.warning(
            f"MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES = {node.NUM_NEGATIVES} is more than {source}; "
            f"each query sees those {other_keys}, as in the official SiMo code"
        )
        return RandomNegatives(other_keys, shared=node.SHARED)

    @classmethod
    def negative_candidates(cls, cfg):
        n = cfg.SOLVER.IMS_PER_BATCH // cfg.SOLVER.GRAD_ACCUM_STEPS
        return n - 1, (
            f"the {n - 1} other keys of a global micro-batch of SOLVER.IMS_PER_BATCH / "
            f"SOLVER.GRAD_ACCUM_STEPS = {cfg.SOLVER.IMS_PER_BATCH} / {cfg.SOLVER.GRAD_ACCUM_STEPS}"
        )

    @classmethod
    def from_config(cls, cfg):
        if cfg.MODEL.QUEUE.NAME:
            raise ConfigError(f"SiMo has no memory bank: set MODEL.QUEUE.NAME to '' (got '{cfg.MODEL.QUEUE.NAME}')")
        return {**super().from_config(cfg), "shuffle_bn": cfg.MODEL.SIMO.SHUFFLE_BN}

    def query_loss(self, q: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """InfoNCE/EqCo of this rank's normalized queries q (N, D) against the global batch of keys (W * N, D)."""
        sim = q @ keys.T  # (N, W * N)
        offset = comm.get_rank() * q.shape[0]
        pos = sim.diagonal(offset=offset)  # (N,): sim[i, offset + i], each query with its own key
        neg = self.negative_sampler(drop_own_keys(sim, offset))  # (N, K)
        return self.loss(pos, neg)

    def forward(self, views):
        """views: [view 1, view 2, (more global views,) local crops...], each (N, 3, H, W) on this rank.
        Returns {"loss_contrastive": scalar}: the queries of view 1 and of each local crop against the
        keys of view 2, averaged over those query crops (as SwAV averages over the crops it predicts)."""
        global_views, local_views = self.split_crops(views)
        queries = [F.normalize(self.projector(self.backbone(global_views[0])), dim=1)]  # (N, D)
        keys = comm.all_gather_tensor(self.encode_keys(global_views[1], self.shuffle_bn))  # (W * N, D), rank r's at rows r * N ...
        if local_views:  # one pass for all local crops (one resolution)
            local = self.projector(self.backbone(torch.cat(local_views)))
            queries += F.normalize(local, dim=1).chunk(len(local_views))
        losses = [self.query_loss(q, keys) for q in queries]
        return {"loss_contrastive": sum(losses) / len(losses)}
