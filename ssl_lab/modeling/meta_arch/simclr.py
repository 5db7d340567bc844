import torch
import torch.nn.functional as F

from ssl_lab.utils import comm

from .base import ContrastiveMethod
from .build import META_ARCH_REGISTRY


def in_batch_logits(z: torch.Tensor, z_all: torch.Tensor, rank: int):
    """Positive and negative similarities of SimCLR's 2N-2 in-batch negatives.

    Args:
        z: (2, N, D) this rank's normalized embeddings of both views.
        z_all: (W, 2, N, D) every rank's embeddings (this rank's block is `rank`).
    Returns:
        pos (2N,), neg (2N, 2NW - 2): for each local embedding, the similarity with
        its other view and with every other embedding of the global batch.
    """
    _, n, d = z.shape
    world = z_all.shape[0]
    sim = z.reshape(2 * n, d) @ z_all.reshape(world * 2 * n, d).T  # (2N, 2NW)
    rows = torch.arange(2 * n, device=z.device)
    self_col = rank * 2 * n + rows
    pos_col = rank * 2 * n + (rows + n) % (2 * n)
    pos = sim[rows, pos_col]
    keep = torch.ones_like(sim, dtype=torch.bool)
    keep[rows, self_col] = False
    keep[rows, pos_col] = False
    return pos, sim[keep].view(2 * n, -1)


@META_ARCH_REGISTRY.register()
class SimCLR(ContrastiveMethod):
    """SimCLR: both views through one encoder; NT-Xent over the global batch.

    The loss is loss_a + loss_b, view 1's anchors and view 2's, each a mean over the N
    queries, as google-research/simclr `objective.py` (twice the mean over all 2N anchors).
    """

    @classmethod
    def negative_candidates(cls, cfg):
        n = cfg.SOLVER.IMS_PER_BATCH // cfg.SOLVER.GRAD_ACCUM_STEPS  # one global micro-batch
        return 2 * n - 2, (
            f"SimCLR's 2N - 2 in-batch embeddings (N = SOLVER.IMS_PER_BATCH / "
            f"SOLVER.GRAD_ACCUM_STEPS = {cfg.SOLVER.IMS_PER_BATCH} / {cfg.SOLVER.GRAD_ACCUM_STEPS})"
        )

    def forward(self, views):
        n = views[0].shape[0]
        z = F.normalize(self.projector(self.backbone(torch.cat(views[:2]))), dim=1)  # (2N, D)
        z_all = comm.all_gather_with_grad(z).view(-1, 2, n, z.shape[1])
        pos, neg = in_batch_logits(z.view(2, n, -1), z_all, comm.get_rank())
        neg = self.negative_sampler(neg)
        loss_a = self.loss(pos[:n], neg[:n])
        loss_b = self.loss(pos[n:], neg[n:])
        return {"loss_contrastive": loss_a + loss_b}
