"""Shuffle-BN (MoCo): permute the global batch across ranks before the key encoder.

With one process the BN statistics are those of the whole batch whatever the
order, so both functions are identity maps there.
"""

import torch
import torch.distributed as dist

from ssl_lab.utils import comm


@torch.no_grad()
def batch_shuffle(x: torch.Tensor):
    """(N, ...) per rank -> (shuffled (N, ...), index to undo it)."""
    world_size = comm.get_world_size()
    if world_size == 1:
        return x, None
    local_size = x.shape[0]
    x_all = comm.all_gather_tensor(x)
    perm = torch.randperm(x_all.shape[0], device=x.device)
    dist.broadcast(perm, src=0)
    idx_unshuffle = torch.argsort(perm)
    rank = comm.get_rank()
    local_idx = perm.view(world_size, local_size)[rank]
    return x_all[local_idx], idx_unshuffle


@torch.no_grad()
def batch_unshuffle(x: torch.Tensor, idx_unshuffle):
    """Undo :func:`batch_shuffle` on the key encoder's output."""
    if idx_unshuffle is None:
        return x
    world_size = comm.get_world_size()
    local_size = x.shape[0]
    x_all = comm.all_gather_tensor(x)
    local_idx = idx_unshuffle.view(world_size, local_size)[comm.get_rank()]
    return x_all[local_idx]
