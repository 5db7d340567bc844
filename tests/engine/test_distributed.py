"""Cross-rank operations with 2 gloo processes against one process holding the whole batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_lab.layers import NaiveSyncBatchNorm, batch_shuffle, batch_unshuffle
from ssl_lab.utils import comm


def _worker(rank, port, inputs, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    torch.manual_seed(0)
    local = inputs.chunk(2)[rank].clone().requires_grad_(True)
    bn = NaiveSyncBatchNorm(3)
    out = bn(local)
    (out * torch.arange(out.numel()).view_as(out).float()).sum().backward()
    leaf = inputs.chunk(2)[rank].clone().requires_grad_(True)
    gathered = comm.all_gather_with_grad(leaf * 2)
    (gathered * torch.arange(gathered.numel()).view_as(gathered).float()).sum().backward()
    shuffled, idx = batch_shuffle(local.detach())
    restored = batch_unshuffle(shuffled * 1.0, idx)
    results[rank] = {
        "out": out.detach(),
        "grad": local.grad,
        "running_mean": bn.running_mean.clone(),
        "running_var": bn.running_var.clone(),
        "gathered": gathered.detach(),
        "gather_grad": leaf.grad,
        "restored": restored,
    }
    dist.destroy_process_group()


@pytest.mark.slow
def test_sync_bn_gather_and_shuffle_match_one_process():
    from ssl_lab.engine.launch import find_free_port

    torch.manual_seed(0)
    inputs = torch.randn(8, 3, 2, 2)
    manager = mp.Manager()
    results = manager.dict()
    mp.start_processes(_worker, nprocs=2, args=(find_free_port(), inputs, results), start_method="spawn")

    single = inputs.clone().requires_grad_(True)
    bn = nn.BatchNorm2d(3)
    out = bn(single)
    weights = torch.cat([torch.arange(out.numel() // 2).float()] * 2).view_as(out)
    (out * weights).sum().backward()
    torch.testing.assert_close(torch.cat([results[r]["out"] for r in range(2)]), out.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([results[r]["grad"] for r in range(2)]), single.grad, atol=1e-5, rtol=1e-4)
    # Running statistics after one step from (0, 1) with momentum 0.1, from the 32 values per channel
    # of the global batch in float64; the variance is the unbiased one (Bessel factor 32 / 31), as torch's.
    per_channel = inputs.double().transpose(0, 1).reshape(3, -1)
    expected_mean = 0.1 * per_channel.mean(1)
    expected_var = 0.9 + 0.1 * per_channel.var(1, unbiased=True)
    for r in range(2):
        torch.testing.assert_close(results[r]["running_mean"].double(), expected_mean, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(results[r]["running_var"].double(), expected_var, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(results[0]["gathered"], inputs * 2)
    # d/dx of sum(w * gather(2x)) summed over both ranks' losses: 2 * w * world_size for this rank's slice.
    w = torch.arange(inputs.numel()).view_as(inputs).float()
    torch.testing.assert_close(torch.cat([results[r]["gather_grad"] for r in range(2)]), 2 * w * 2)
    for r in range(2):
        torch.testing.assert_close(results[r]["restored"], inputs.chunk(2)[r])


def test_comm_is_local_without_process_group():
    x = torch.randn(4, 2)
    assert comm.get_world_size() == 1 and comm.all_gather_tensor(x) is x and comm.all_gather_with_grad(x) is x
    assert NaiveSyncBatchNorm(2)(x).shape == x.shape
    assert batch_shuffle(x)[1] is None
