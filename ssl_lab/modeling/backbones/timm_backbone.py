"""Any timm model as a backbone (ViTs, ConvNeXts, timm's ResNets...), built without its classifier.

timm is imported when a TimmBackbone is built, not with ssl_lab (it adds seconds to every import).
Weights are never fetched from a hub: the model is created with `pretrained=False`, and weights come
only from MODEL.WEIGHTS or the model zoo (ssl_lab.checkpoint.backbone_weights reads timm's layout).
"""

import difflib
import math
from typing import Optional

import torch
from torch import nn

from ssl_lab.config import configurable

from .build import BACKBONE_REGISTRY


def pairs_to_kwargs(pairs) -> dict:
    """("num_heads", 12, "img_size", 32) -> {"num_heads": 12, "img_size": 32} (MODEL.BACKBONE.TIMM.KWARGS)."""
    if len(pairs) % 2 or not all(isinstance(key, str) for key in pairs[::2]):
        raise ValueError(f"MODEL.BACKBONE.TIMM.KWARGS must be KEY, VALUE pairs such as ('num_heads', 12), got {tuple(pairs)}")
    return dict(zip(pairs[::2], pairs[1::2]))


def sincos_2d_position_embedding(grid_size, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """MoCo v3's fixed position embedding (moco-v3 `vits.py`, build_2d_sincos_position_embedding):
    (1, 1 + H * W, dim), a zero row for the class token, then per patch (row-major)
    [sin(r w), cos(r w), sin(c w), cos(c w)] of its row r and column c, w = temperature^(-i / (dim / 4)).
    """
    from timm.layers import build_sincos2d_pos_embed

    patches = build_sincos2d_pos_embed(list(grid_size), dim, temperature, interleave_sin_cos=True)
    return torch.cat([torch.zeros(1, dim), patches]).unsqueeze(0)


def mocov3_vit_init_(vit: nn.Module) -> None:
    """Re-initialize a timm VisionTransformer as MoCo v3's `VisionTransformerMoCo` (moco-v3 `vits.py`):
    linear layers xavier-uniform (Q, K and V each as its own matrix), zero biases, class token
    N(0, 1e-6), patch projection U(+-sqrt(6 / (3 p^2 + D))), and the fixed sin-cos position embedding."""
    vit.init_weights(mode="moco")  # timm's port of MoCo v3's linear and class-token init
    proj = vit.patch_embed.proj
    bound = math.sqrt(6.0 / (proj.weight[0].numel() + vit.embed_dim))
    with torch.no_grad():
        nn.init.uniform_(proj.weight, -bound, bound)
        nn.init.zeros_(proj.bias)
        vit.pos_embed.copy_(sincos_2d_position_embedding(vit.patch_embed.grid_size, vit.embed_dim))
    vit.pos_embed.requires_grad_(False)


@BACKBONE_REGISTRY.register()
class TimmBackbone(nn.Module):
    """`timm.create_model(name, pretrained=False, num_classes=0, **kwargs)`, kept as `self.model`.

    forward: (N, 3, H, W) -> (N, out_dim), the model's own pooling (class token for ViTs, global
    average for CNNs); out_dim is the model's `num_features`. For ViTs, `freeze_patch_embed` stops
    the gradient at the patch projection (MoCo v3's `--stop-grad-conv1`: a fixed random projection)
    and `mocov3_vit` initializes the model as MoCo v3's ViT (:func:`mocov3_vit_init_`).
    """

    @configurable
    def __init__(self, name: str, kwargs: Optional[dict] = None, freeze_patch_embed: bool = False, mocov3_vit: bool = False):
        super().__init__()
        import timm

        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
            raise ValueError(
                f"MODEL.BACKBONE.TIMM.MODEL '{name}' is not a timm model name"
                + (f"; close names: {', '.join(close)}" if close else "; see timm.list_models()")
            )
        self.model = timm.create_model(name, pretrained=False, num_classes=0, **(kwargs or {}))
        self.out_dim = self.model.num_features
        is_vit = hasattr(self.model, "patch_embed") and getattr(self.model, "pos_embed", None) is not None
        if (freeze_patch_embed or mocov3_vit) and not is_vit:
            raise ValueError(
                f"MODEL.BACKBONE.TIMM.FREEZE_PATCH_EMBED and MOCOV3_VIT need a ViT with a patch and "
                f"a position embedding; timm's '{name}' has none"
            )
        if mocov3_vit:
            if self.model.num_prefix_tokens != 1:
                raise ValueError(
                    f"MODEL.BACKBONE.TIMM.MOCOV3_VIT needs one class token; '{name}' has {self.model.num_prefix_tokens} prefix tokens"
                )
            mocov3_vit_init_(self.model)
        if freeze_patch_embed:
            self.model.patch_embed.proj.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.BACKBONE.TIMM
        return {
            "name": node.MODEL,
            "kwargs": pairs_to_kwargs(node.KWARGS),
            "freeze_patch_embed": node.FREEZE_PATCH_EMBED,
            "mocov3_vit": node.MOCOV3_VIT,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
