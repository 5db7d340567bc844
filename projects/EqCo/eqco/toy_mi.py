"""The toy MI estimation of the paper's Table 5, on the protocol of Poole et al. (2019).

x ~ N(0, I_d) and y = rho x + sqrt(1 - rho^2) eps, so the true MI is -(d / 2) log(1 - rho^2).
A separable critic s(x, y) = g(x) . h(y), with g, h MLPs of one hidden layer, is trained with Adam
on a fresh batch of N pairs per step (each x_i against the N - 1 other y_j: K = N - 1). The frozen
critic's bound log(alpha + 1) - L (log N - L for InfoNCE) is then averaged over fresh batches.

All (method, MI) configurations of one N train together as a batch of independent critics: their
losses add up, and Adam is elementwise, so this equals training each on its own.
"""

import math
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .loss import mi_lower_bound

# Table 5 of the paper: {method: {true MI: {N: estimate}}}.
PAPER_TABLE = {
    "InfoNCE": {
        2: {64: 1.7, 128: 1.8, 256: 1.9, 512: 1.9},
        4: {64: 2.9, 128: 3.2, 256: 3.4, 512: 3.6},
        6: {64: 3.6, 128: 4.1, 256: 4.5, 512: 4.9},
        8: {64: 3.9, 128: 4.6, 256: 5.1, 512: 5.6},
        10: {64: 4.1, 128: 4.7, 256: 5.4, 512: 6.0},
    },
    "EqCo": {
        2: {64: 1.9, 128: 1.9, 256: 1.9, 512: 1.9},
        4: {64: 3.8, 128: 3.7, 256: 3.6, 512: 3.6},
        6: {64: 5.1, 128: 5.0, 256: 4.9, 512: 4.9},
        8: {64: 5.8, 128: 5.7, 256: 5.7, 512: 5.6},
        10: {64: 6.1, 128: 6.0, 256: 6.0, 512: 6.0},
    },
}


def rho_for_mi(mi: float, dim: int) -> float:
    """The correlation rho whose Gaussian pair (x, y) in `dim` dimensions has mutual information `mi`."""
    return math.sqrt(1 - math.exp(-2 * mi / dim))


def sample_pairs(rhos: torch.Tensor, n: int, dim: int, generator: torch.Generator):
    """x (N, dim) shared by all configurations, y (M, N, dim) with correlation rhos (M,) to x."""
    x = torch.randn(n, dim, generator=generator)
    eps = torch.randn(n, dim, generator=generator)
    rhos = rhos.view(-1, 1, 1)
    return x, rhos * x + torch.sqrt(1 - rhos**2) * eps


class BatchedLinear(nn.Module):
    """C independent linear layers: (C, N, in) or shared (N, in) -> (C, N, out); nn.Linear's init."""

    def __init__(self, num: int, in_dim: int, out_dim: int, generator: torch.Generator):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)
        self.weight = nn.Parameter((torch.rand(num, in_dim, out_dim, generator=generator) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(num, 1, out_dim, generator=generator) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(self.weight.shape[0], -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)


class SeparableCritics(nn.Module):
    """C separable critics s_c(x, y) = g_c(x) . h_c(y), g_c and h_c: dim -> hidden -> ReLU -> embed."""

    def __init__(self, num: int, generator: torch.Generator, dim: int = 20, hidden: int = 256, embed: int = 32):
        super().__init__()

        def mlp():
            return nn.Sequential(BatchedLinear(num, dim, hidden, generator), nn.ReLU(), BatchedLinear(num, hidden, embed, generator))

        self.g, self.h = mlp(), mlp()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (N, dim) or (C, N, dim); y: (C, N, dim). Returns scores (C, N, N), [c, i, j] = s_c(x_i, y_j)."""
        return self.g(x) @ self.h(y).transpose(1, 2)


def critic_losses(scores: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """EqCoLoss (temperature 1) of each critic over its batch, from the full score matrix.

    scores: (C, N, N), positives on the diagonal, K = N - 1 negatives off it; alphas: (C,), with
    alpha = K for InfoNCE. Returns (C,) mean losses. Weighting the negatives by alpha / K is the
    margin log(alpha / K) taken off the positive (Eq. 5), so only the diagonal changes.
    """
    c, n, _ = scores.shape
    logits = scores.clone()
    logits.diagonal(dim1=1, dim2=2).sub_(torch.log(alphas / (n - 1)).to(scores.dtype).view(c, 1))
    target = torch.arange(n, device=scores.device).repeat(c)
    return F.cross_entropy(logits.flatten(0, 1), target, reduction="none").view(c, n).mean(dim=1)


def estimate_mi(
    alphas: Dict[str, Optional[float]],
    mis: Sequence[float],
    n: int,
    steps: int = 5000,
    repeats: int = 1000,
    lr: float = 5e-4,
    dim: int = 20,
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
) -> Dict[str, Dict[float, float]]:
    """Train a critic per (method, MI) on batches of `n` pairs; average its bound over `repeats` batches.

    alphas: method name -> EqCo's alpha, or None for InfoNCE (alpha = K = n - 1).
    progress: called with 1 after every training step and every evaluation batch.
    Returns {method: {MI: estimate of log(alpha + 1) - L}}.
    """
    generator = torch.Generator().manual_seed(seed)
    names, m = list(alphas), len(mis)
    rhos = torch.tensor([rho_for_mi(mi, dim) for mi in mis])
    # Critic i * m + j: method i, MI j.
    alpha = torch.tensor([alphas[name] or n - 1 for name in names], dtype=torch.float64).repeat_interleave(m)
    critics = SeparableCritics(len(names) * m, generator, dim)
    optimizer = torch.optim.Adam(critics.parameters(), lr=lr)

    def losses():
        x, y = sample_pairs(rhos, n, dim, generator)
        return critic_losses(critics(x, y.repeat(len(names), 1, 1)), alpha)

    for _ in range(steps):
        total = losses().sum()  # the critics' gradients do not interact
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if progress:
            progress(1)

    mean_loss = torch.zeros(len(names) * m, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(repeats):
            mean_loss += losses().double() / repeats
            if progress:
                progress(1)
    bounds = mi_lower_bound(mean_loss, alpha).view(len(names), m)
    return {name: {mi: bounds[i, j].item() for j, mi in enumerate(mis)} for i, name in enumerate(names)}
