"""BatchNorm synchronized by all_reduce, usable on CPU (gloo) and GPU (NCCL)."""

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

from ssl_lab.config import ConfigError
from ssl_lab.utils import comm


class NaiveSyncBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the global batch: mean and mean-of-squares are all-reduced.

    Works for (N, C) and (N, C, H, W) inputs. In eval mode, or on one process, it is
    a plain BatchNorm. Gradients flow through the all-reduce (autograd-aware
    `torch.distributed.nn.functional.all_reduce`), so the backward matches a single process
    holding the whole batch. Assumes the same per-rank batch size.
    """

    def _check_input_dim(self, input):
        if input.dim() not in (2, 3, 4, 5):
            raise ValueError(f"expected 2D-5D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if comm.get_world_size() == 1 or not self.training:
            return nn.functional.batch_norm(
                input,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                self.training,
                self.momentum,
                self.eps,
            )
        channels = input.shape[1]
        reduce_dims = [0] + list(range(2, input.dim()))
        mean = input.mean(dim=reduce_dims)
        meansqr = (input * input).mean(dim=reduce_dims)
        stats = torch.cat([mean, meansqr]) / comm.get_world_size()
        stats = dist_nn.all_reduce(stats, op=dist.ReduceOp.SUM)
        mean, meansqr = torch.split(stats, channels)
        var = meansqr - mean * mean
        if self.track_running_stats:
            count = input.numel() // channels * comm.get_world_size()
            with torch.no_grad():
                self.num_batches_tracked += 1
                self.running_mean += self.momentum * (mean.detach() - self.running_mean)
                unbiased = var.detach() * count / max(count - 1, 1)
                self.running_var += self.momentum * (unbiased - self.running_var)
        invstd = torch.rsqrt(var + self.eps)
        scale = invstd if self.weight is None else self.weight * invstd
        shift = -mean * scale if self.bias is None else self.bias - mean * scale
        shape = [1, channels] + [1] * (input.dim() - 2)
        return input * scale.reshape(shape) + shift.reshape(shape)


def get_norm_layer(norm: str, dims: int = 2):
    """The BatchNorm class named `norm`: "BN" (plain) or "SyncBN" (synced across processes),
    for (N, C, H, W) inputs (dims=2) or (N, C) inputs (dims=1)."""
    if norm == "BN":
        return nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    if norm == "SyncBN":
        return NaiveSyncBatchNorm
    raise ConfigError(f"Unknown norm '{norm}'; expected one of: BN, SyncBN")
