import torch
import torch.nn.functional as F

from ssl_lab.evaluation import topk_accuracy, weighted_knn_predict
from ssl_lab.modeling.meta_arch.simclr import in_batch_logits


def test_weighted_knn_classifies_separable_clusters():
    torch.manual_seed(0)
    centers = F.normalize(torch.randn(3, 16), dim=1)
    labels = torch.arange(3).repeat_interleave(20)
    features = F.normalize(centers[labels] + 0.05 * torch.randn(60, 16), dim=1)
    scores = weighted_knn_predict(features[::2], labels[::2], features[1::2], k=5, temperature=0.07, num_classes=3)
    assert topk_accuracy(scores, labels[1::2])["top1"] == 100.0
    shuffled = weighted_knn_predict(features[::2], labels[::2][torch.randperm(30)], features[1::2], 5, 0.07, 3)
    assert topk_accuracy(shuffled, labels[1::2])["top1"] < 80.0


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
    from ssl_lab.modeling.samplers import AllNegatives

    torch.manual_seed(0)
    n, d, tau = 5, 8, 0.1
    v1, v2 = torch.randn(n, d), torch.randn(n, d)
    model = SimCLR(nn.Identity(), nn.Identity(), InfoNCELoss(tau), AllNegatives())
    loss = model([v1, v2])["loss_contrastive"]

    h1, h2 = F.normalize(v1.double(), dim=1), F.normalize(v2.double(), dim=1)
    labels = torch.arange(n)
    masks = torch.eye(n, dtype=torch.float64) * 1e9
    logits_aa, logits_bb = h1 @ h1.T / tau - masks, h2 @ h2.T / tau - masks
    logits_ab, logits_ba = h1 @ h2.T / tau, h2 @ h1.T / tau
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], 1), labels)
    loss_b = F.cross_entropy(torch.cat([logits_ba, logits_bb], 1), labels)
    torch.testing.assert_close(loss.double(), loss_a + loss_b, rtol=1e-5, atol=1e-6)
