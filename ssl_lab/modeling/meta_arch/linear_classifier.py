import torch
import torch.nn.functional as F
from torch import nn

from ssl_lab.config import ConfigError, configurable

from ..backbones import build_backbone
from .build import META_ARCH_REGISTRY


@META_ARCH_REGISTRY.register()
class LinearClassifier(nn.Module):
    """Linear evaluation: a frozen backbone, always in eval mode, under a trained linear layer.

    forward(views (list of one (N, 3, H, W)), labels (N,)) -> {"loss_cls"}; `classify(images)` -> (N, C) logits.
    Only `fc` is trained; backbone weights and BN statistics never change.
    """

    @configurable
    def __init__(self, backbone: nn.Module, num_classes: int, init_std: float = 0.01):
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"MODEL.CLASSIFIER.NUM_CLASSES must be >= 2, got {num_classes}")
        self.backbone = backbone
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.fc = nn.Linear(backbone.out_dim, num_classes)
        nn.init.normal_(self.fc.weight, std=init_std)
        nn.init.zeros_(self.fc.bias)
        self.backbone.eval()

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.CLASSIFIER
        return {"backbone": build_backbone(cfg), "num_classes": node.NUM_CLASSES, "init_std": node.INIT_STD}

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            features = self.backbone(images)
        return self.fc(features)

    def forward(self, views, labels):
        return {"loss_cls": F.cross_entropy(self.classify(views[0]), labels)}
