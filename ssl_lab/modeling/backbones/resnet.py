"""ResNets built from torchvision's residual blocks, with a width multiplier and a small-image stem.

The module is ours (torchvision's ResNet class has no public argument for widening every
stage or for the stem), its blocks are torchvision's `BasicBlock` / `Bottleneck` through their
public constructors. It keeps torchvision's parameter names (conv1, bn1, layer1..4 with
`downsample.0/1`), so its state dict loads torchvision / official MoCo weights and converts
to detectron2.
"""

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from ssl_lab.config import ConfigError, configurable
from ssl_lab.layers import get_norm_layer

from .build import BACKBONE_REGISTRY

_DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def make_stage(block, inplanes: int, planes: int, num_blocks: int, stride: int, norm_layer) -> nn.Sequential:
    """`num_blocks` blocks of `planes` (x block.expansion out); the first strides and projects the shortcut."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False), norm_layer(out))
    blocks = [block(inplanes, planes, stride=stride, downsample=downsample, norm_layer=norm_layer)]
    blocks += [block(out, planes, norm_layer=norm_layer) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


@BACKBONE_REGISTRY.register()
class ResNet(nn.Module):
    """ResNet-18/34/50/101/152 whose channel counts are all multiplied by `width`; stage i has
    `base_channels * width * 2**i` planes (torchvision: base_channels 64).

    forward: (N, 3, H, W) -> (N, out_dim), the global-average-pooled last stage;
    out_dim = 8 * base_channels * width (basic blocks) or 32 * base_channels * width (bottlenecks).
    """

    @configurable
    def __init__(
        self,
        depth: int = 50,
        width: int = 1,
        small_stem: bool = False,
        norm: str = "BN",
        zero_init_residual: bool = False,
        base_channels: int = 64,
    ):
        super().__init__()
        if depth not in _DEPTHS:
            raise ConfigError(f"MODEL.BACKBONE.DEPTH must be one of {sorted(_DEPTHS)}, got {depth}")
        if width < 1:
            raise ConfigError(f"MODEL.BACKBONE.WIDTH_MULTIPLIER must be >= 1, got {width}")
        if base_channels < 1:
            raise ConfigError(f"MODEL.BACKBONE.BASE_CHANNELS must be >= 1, got {base_channels}")
        block, layers = _DEPTHS[depth]
        norm_layer = get_norm_layer(norm, dims=2)
        stem = base_channels * width
        if small_stem:
            self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = norm_layer(stem)
        self.relu = nn.ReLU(inplace=True)
        inplanes = stem
        for i, num_blocks in enumerate(layers):
            planes = base_channels * width * 2**i
            setattr(self, f"layer{i + 1}", make_stage(block, inplanes, planes, num_blocks, 1 if i == 0 else 2, norm_layer))
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.out_dim = inplanes
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
                if last_bn is not None:
                    nn.init.zeros_(last_bn.weight)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.BACKBONE
        return {
            "depth": node.DEPTH,
            "width": node.WIDTH_MULTIPLIER,
            "small_stem": node.SMALL_STEM,
            "norm": node.NORM,
            "zero_init_residual": node.ZERO_INIT_RESIDUAL,
            "base_channels": node.BASE_CHANNELS,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)
