"""Process-group helpers. Every function is a local no-op when no process group exists."""

import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def collective_device() -> torch.device:
    """Where tensors for collectives must live: the current GPU under NCCL, else the CPU."""
    if is_dist() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def synchronize() -> None:
    """Barrier across all processes (no-op on one process)."""
    if get_world_size() > 1:
        dist.barrier()


@torch.no_grad()
def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally-shaped tensors of all ranks along dim 0, without gradient.

    (N, ...) on each rank -> (world_size * N, ...), ordered by rank.
    """
    world_size = get_world_size()
    if world_size == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Like :func:`all_gather_tensor`, but gradients flow back to every rank's input."""
    if get_world_size() == 1:
        return tensor
    return torch.cat(dist_nn.all_gather(tensor.contiguous()), dim=0)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average a tensor over ranks (returns a new tensor)."""
    if get_world_size() == 1:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / get_world_size()


def all_gather_object(obj):
    """List of `obj` from every rank (pickled through the default group)."""
    if get_world_size() == 1:
        return [obj]
    output = [None] * get_world_size()
    dist.all_gather_object(output, obj)
    return output


def shared_random_seed() -> int:
    """A fresh random seed in [0, 2**31), drawn on rank 0 and the same on every rank."""
    seed = int.from_bytes(os.urandom(4), "little") % 2**31
    return all_gather_object(seed)[0]


def reduce_dict(values: dict, average: bool = True) -> dict:
    """All-reduce a dict of scalar tensors (same keys on every rank)."""
    if get_world_size() == 1:
        return values
    names = sorted(values)
    stacked = torch.stack([values[k].detach().float() for k in names])
    dist.all_reduce(stacked)
    if average:
        stacked /= get_world_size()
    return dict(zip(names, stacked))


def unwrap_model(model):
    """The model inside DistributedDataParallel, or `model` itself."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
