"""MoCo's objective on a tiny linear encoder against the InfoNCE formula evaluated in float64."""

import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.modeling.losses import InfoNCELoss
from ssl_lab.modeling.meta_arch.moco import MoCo
from ssl_lab.modeling.negative_samplers import AllNegatives
from ssl_lab.modeling.queues import MoCoQueue


def _linear_moco(temperature):
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    return MoCo(
        backbone=backbone,
        projector=nn.Linear(6, 4),
        queue=MoCoQueue(size=8, dim=4, global_batch_size=4),
        loss=InfoNCELoss(temperature),
        negative_sampler=AllNegatives(),
        shuffle_bn=False,
    )


def _embed64(model, images):
    """normalize(projector(backbone(x))) in float64, from the weights (key encoder = query encoder at init)."""
    linear, projector = model.backbone[1], model.projector
    h = images.flatten(1).double() @ linear.weight.double().T + linear.bias.double()
    return F.normalize(h @ projector.weight.double().T + projector.bias.double(), dim=1)


def test_loss_reads_the_queue_before_this_batch_is_enqueued():
    tau = 0.2
    model = _linear_moco(tau)
    views = [torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)]
    queue_before = model.queue.queue.clone().double()
    q, k = _embed64(model, views[0]), _embed64(model, views[1])
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue_before.T], dim=1) / tau
    expected = (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()  # -log softmax of the positive

    loss = model(views)["loss_contrastive"]

    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    # Afterwards the batch's keys fill the first slots of the queue and the pointer moves on.
    torch.testing.assert_close(model.queue.queue[:4].double(), k, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.queue.queue[4:], queue_before[4:].float())
    assert int(model.queue.ptr) == 4
