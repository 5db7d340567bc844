"""The weighted regularizer terms that MSBReg (or any method) adds on its online embeddings."""

import torch
from torch import nn

from .losses import BrownianDiffusiveLoss, SingularValueLoss


class EmbeddingRegularizers(nn.Module):
    """A set of named, weighted losses of the online embeddings: (K, N, D) -> {name: weight * loss}."""

    def __init__(self, terms: dict):
        """terms: {loss name: (weight, module mapping (K, N, D) -> scalar)}; zero weights are left out."""
        super().__init__()
        self.weights = {name: weight for name, (weight, _) in terms.items() if weight != 0}
        self.terms = nn.ModuleDict({name: module for name, (_, module) in terms.items() if name in self.weights})

    def forward(self, embeddings: torch.Tensor) -> dict:
        return {name: self.weights[name] * term(embeddings) for name, term in self.terms.items()}


def build_regularizers(cfg) -> EmbeddingRegularizers:
    """lambda_s * L_S and lambda_b * L_B from cfg.MODEL.MSBREG, logged as loss_singular / loss_brownian."""
    node = cfg.MODEL.MSBREG
    return EmbeddingRegularizers(
        {
            "loss_singular": (node.SINGULAR_WEIGHT, SingularValueLoss(cfg)),
            "loss_brownian": (node.BROWNIAN_WEIGHT, BrownianDiffusiveLoss(cfg)),
        }
    )
