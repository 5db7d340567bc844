"""Backbones, heads, queue and negative samplers."""

import pytest
import torch
import torchvision
from torch import nn

from ssl_lab.layers import NaiveSyncBatchNorm
from ssl_lab.modeling.backbones import ResNet
from ssl_lab.modeling.heads import MLPHead
from ssl_lab.modeling.negative_samplers import RandomNegatives
from ssl_lab.modeling.queues import MoCoQueue


@pytest.mark.parametrize("depth,width,dim", [(18, 1, 512), (50, 1, 2048), (18, 2, 1024)])
def test_resnet_output_dims(depth, width, dim):
    model = ResNet(depth, width=width).eval()
    assert model.out_dim == dim
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, dim)


def test_resnet_keeps_torchvision_names_and_small_stem_keeps_resolution():
    state = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if not k.startswith("fc.")}
    assert ResNet(18).load_state_dict(state).missing_keys == []
    small = ResNet(18, small_stem=True)
    assert small.conv1.stride == (1, 1) and isinstance(small.maxpool, nn.Identity)
    assert isinstance(ResNet(18, norm="SyncBN").bn1, NaiveSyncBatchNorm)
    with pytest.raises(ValueError, match="DEPTH"):
        ResNet(19)


@pytest.mark.parametrize("depth, reference", [(18, "resnet18"), (50, "resnet50")])
def test_resnet_computes_what_torchvision_computes(depth, reference):
    """Same parameter names as torchvision's model, and bit-identical pooled features with its weights."""
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, reference)().eval()
    theirs.fc = nn.Identity()
    ours = ResNet(depth).eval()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    ours.load_state_dict(theirs.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs(images), rtol=0, atol=0)


def test_mlp_head_layouts():
    linear = MLPHead(32, 64, 8, num_layers=1)
    assert len(linear) == 1 and linear(torch.randn(4, 32)).shape == (4, 8)
    bn_head = MLPHead(32, 64, 8, num_layers=2, hidden_bn=True, last_bn=True)
    assert [type(m).__name__ for m in bn_head] == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d"]
    assert bn_head[0].bias is None and bn_head(torch.randn(4, 32)).shape == (4, 8)


def test_queue_is_a_ring_buffer_saved_in_state_dict():
    queue = MoCoQueue(size=8, dim=3, global_batch_size=4)
    keys = [torch.full((4, 3), float(i)) for i in range(3)]
    for k in keys:
        queue.enqueue(k)
    assert int(queue.ptr) == 4
    assert torch.equal(queue.queue[:4], keys[2]) and torch.equal(queue.queue[4:], keys[1])
    state = queue.state_dict()
    assert set(state) == {"queue", "ptr"}
    restored = MoCoQueue(size=8, dim=3, global_batch_size=4)
    restored.load_state_dict(state)
    assert torch.equal(restored.queue, queue.queue) and int(restored.ptr) == 4


def test_queue_smaller_than_batch_holds_random_keys_of_last_batch():
    queue = MoCoQueue(size=3, dim=2, global_batch_size=8)
    batch = torch.arange(16.0).view(8, 2)
    queue.enqueue(batch)
    rows = {tuple(r.tolist()) for r in queue.queue}
    assert len(rows) == 3 and rows <= {tuple(r.tolist()) for r in batch}


def test_queue_size_must_divide_by_global_batch():
    with pytest.raises(ValueError, match="multiple of the global batch"):
        MoCoQueue(size=100, dim=2, global_batch_size=32)


def test_negatives_is_a_snapshot():
    queue = MoCoQueue(size=4, dim=2, global_batch_size=4)
    before = queue.queue.clone()
    snapshot = queue.negatives()
    queue.enqueue(torch.zeros(4, 2))
    assert torch.equal(snapshot, before) and not snapshot.requires_grad
    assert torch.equal(queue.queue, torch.zeros(4, 2))


@pytest.mark.parametrize("shared", [True, False])
def test_random_negatives_pick_existing_candidates(shared):
    torch.manual_seed(0)
    neg = torch.arange(40.0).view(4, 10)
    picked = RandomNegatives(3, shared=shared)(neg)
    assert picked.shape == (4, 3)
    for row, candidates in zip(picked, neg):
        assert set(row.tolist()) <= set(candidates.tolist()) and len(set(row.tolist())) == 3
    columns = (picked - neg[:, :1]).long()  # column index of each pick
    assert (columns == columns[0]).all() == shared
