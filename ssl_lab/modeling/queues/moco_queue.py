import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import ConfigError, configurable
from ssl_lab.utils import comm

from .build import QUEUE_REGISTRY


@QUEUE_REGISTRY.register()
class MoCoQueue(nn.Module):
    """FIFO queue of the K most recent keys of the global batch (MoCo).

    The queue and its pointer are buffers, so they are saved in checkpoints.
    Keys are all-gathered across ranks before enqueue, so every rank holds the
    same queue. With K >= N (global batch) K must be a multiple of N; with
    K < N (EqCo's small-K regime) the queue holds K random keys of the previous batch.
    """

    @configurable
    def __init__(self, size: int, dim: int, global_batch_size: int):
        super().__init__()
        if size <= 0:
            raise ConfigError(f"MODEL.QUEUE.SIZE must be > 0, got {size}")
        if size >= global_batch_size and size % global_batch_size != 0:
            raise ConfigError(
                f"MODEL.QUEUE.SIZE ({size}) must be a multiple of the global batch "
                f"SOLVER.IMS_PER_BATCH ({global_batch_size}), e.g. "
                f"{(size // global_batch_size) * global_batch_size or global_batch_size}, or smaller than it"
            )
        self.size = size
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_config(cls, cfg, dim: int):
        return {"size": cfg.MODEL.QUEUE.SIZE, "dim": dim, "global_batch_size": cfg.SOLVER.IMS_PER_BATCH}

    def negatives(self) -> torch.Tensor:
        """(K, D) snapshot of the queue (a copy: enqueue() may run before backward)."""
        return self.queue.clone().detach()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Add this rank's keys (N_local, D); keys of all ranks are gathered first."""
        keys = comm.all_gather_tensor(keys.detach()).to(self.queue.dtype)
        if self.size < keys.shape[0]:
            # Every rank draws the same subset: the generator is seeded from the shared pointer state.
            generator = torch.Generator(device="cpu").manual_seed(int(self.ptr) + 1)
            self.ptr += 1
            index = torch.randperm(keys.shape[0], generator=generator)[: self.size].to(keys.device)
            self.queue.copy_(keys[index])
            return
        if self.size % keys.shape[0] != 0:
            raise RuntimeError(f"Queue size {self.size} is not a multiple of the gathered batch {keys.shape[0]}")
        start = int(self.ptr)
        self.queue[start : start + keys.shape[0]] = keys
        self.ptr.fill_((start + keys.shape[0]) % self.size)
