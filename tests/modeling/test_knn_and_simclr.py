import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssl_lab.evaluation import KNNEvaluator, inference_on_dataset
from ssl_lab.modeling.meta_arch.simclr import in_batch_logits


class _IdentityBackbone(nn.Module):
    """Features = inputs; the parameter only tells the evaluator the device."""

    def __init__(self):
        super().__init__()
        self.device_marker = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x


# Three directions with pairwise cosines 0.6 or below; the memory of class 1 lies 50x farther out
# than the others, so plain dot products (not cosines) would send every class-0 query to class 1.
_DIRECTIONS = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]]), dim=1)
_MEMORY_NORMS = torch.tensor([1.0, 50.0, 2.0])


def _clusters(num, norms, seed):
    """`num` points, label i % 3 (interleaved, so that any shift of labels against features shows),
    within cosine 0.999 of their class direction, scaled by the class's norm."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % 3
    noise = 0.02 * F.normalize(torch.randn(num, 3, generator=generator), dim=1)
    return F.normalize(_DIRECTIONS[labels] + noise, dim=1) * norms[labels, None], labels


def _knn_top1(memory, query, k=5):
    loaders = [DataLoader(TensorDataset(*split), batch_size=4) for split in (memory, query)]
    return inference_on_dataset(_IdentityBackbone(), KNNEvaluator(*loaders, k=k, temperature=0.07))["knn/top1"]


def test_knn_of_separable_directions_is_exact_whatever_the_feature_norms():
    # Every query's cosine to its own class's memory (> 0.99) exceeds that to any other (< 0.65), and
    # each class has 20 > k memory points, so cosine kNN is right on every query: 100 %.
    memory, query = _clusters(60, _MEMORY_NORMS, seed=0), _clusters(30, torch.ones(3), seed=1)
    assert _knn_top1(memory, query) == 100.0


def test_knn_with_every_memory_label_wrong_scores_zero():
    # All k neighbours of a query lie in its own cluster; relabelled y -> (y + 1) % 3 they all vote
    # for a wrong class, so no query can be right.
    (features, labels), query = _clusters(60, _MEMORY_NORMS, seed=0), _clusters(30, torch.ones(3), seed=1)
    assert _knn_top1((features, (labels + 1) % 3), query) == 0.0


def test_simclr_logits_pick_other_view_as_positive_and_all_others_as_negatives():
    torch.manual_seed(0)
    world, n, d, rank = 2, 3, 4, 1
    z_all = F.normalize(torch.randn(world, 2, n, d), dim=-1)
    pos, neg = in_batch_logits(z_all[rank], z_all, rank)
    flat = z_all.reshape(-1, d)
    assert neg.shape == (2 * n, 2 * n * world - 2)
    for view in range(2):
        for i in range(n):
            row = view * n + i
            anchor = z_all[rank, view, i]
            torch.testing.assert_close(pos[row], anchor @ z_all[rank, 1 - view, i])
            expected = sorted((flat @ anchor).tolist())
            expected.remove(min(expected, key=lambda s: abs(s - 1.0)))  # itself
            expected.remove(min(expected, key=lambda s: abs(s - pos[row].item())))
            torch.testing.assert_close(torch.tensor(sorted(neg[row].tolist())), torch.tensor(expected))


def test_simclr_loss_is_the_official_loss_a_plus_loss_b():
    """google-research/simclr objective.py: loss_a + loss_b, each a softmax cross-entropy
    averaged over the N anchors of one view, against [other view | same view minus self]."""
    from torch import nn

    from ssl_lab.modeling.losses import InfoNCELoss
    from ssl_lab.modeling.meta_arch.simclr import SimCLR
    from ssl_lab.modeling.negative_samplers import AllNegatives

    torch.manual_seed(0)
    n, d, tau = 5, 8, 0.1
    v1, v2 = torch.randn(n, d), torch.randn(n, d)
    model = SimCLR(backbone=nn.Identity(), projector=nn.Identity(), loss=InfoNCELoss(tau), negative_sampler=AllNegatives())
    loss = model([v1, v2])["loss_contrastive"]

    h1, h2 = F.normalize(v1.double(), dim=1), F.normalize(v2.double(), dim=1)
    labels = torch.arange(n)
    masks = torch.eye(n, dtype=torch.float64) * 1e9
    logits_aa, logits_bb = h1 @ h1.T / tau - masks, h2 @ h2.T / tau - masks
    logits_ab, logits_ba = h1 @ h2.T / tau, h2 @ h1.T / tau
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], 1), labels)
    loss_b = F.cross_entropy(torch.cat([logits_ba, logits_bb], 1), labels)
    torch.testing.assert_close(loss.double(), loss_a + loss_b, rtol=1e-5, atol=1e-6)
