"""TimmBackbone (timm models as backbones) and the weight reader on timm's and MoCo v3's key layouts."""

import os

import pytest
import torch
import yaml
from torch import nn

from ssl_lab import model_zoo
from ssl_lab.config import get_cfg
from ssl_lab.model_zoo import import_backbone_state_dict, load_backbone_weights
from ssl_lab.modeling import build_model
from ssl_lab.modeling.backbones import TimmBackbone, build_backbone
from ssl_lab.modeling.backbones.timm_backbone import sincos_2d_position_embedding

from conftest import REPO_ROOT

timm = pytest.importorskip("timm")

# ViT-Tiny at 16 px in 4 px patches, 2 blocks: seconds to build.
VIT = "vit_tiny_patch16_224"
VIT_KWARGS = {"img_size": 16, "patch_size": 4, "depth": 2}


def _vit(**extra):
    return TimmBackbone(VIT, dict(VIT_KWARGS), **extra)


def official_sincos(h, w, embed_dim, temperature=10000.0):
    """moco-v3 vits.py VisionTransformerMoCo.build_2d_sincos_position_embedding, transcribed."""
    grid_w = torch.arange(w, dtype=torch.float32)
    grid_h = torch.arange(h, dtype=torch.float32)
    grid_w, grid_h = torch.meshgrid(grid_w, grid_h, indexing="ij")  # torch's default then
    pos_dim = embed_dim // 4
    omega = torch.arange(pos_dim, dtype=torch.float32) / pos_dim
    omega = 1.0 / (temperature**omega)
    out_w = torch.einsum("m,d->md", [grid_w.flatten(), omega])
    out_h = torch.einsum("m,d->md", [grid_h.flatten(), omega])
    pos_emb = torch.cat([torch.sin(out_w), torch.cos(out_w), torch.sin(out_h), torch.cos(out_h)], dim=1)[None, :, :]
    pe_token = torch.zeros([1, 1, embed_dim], dtype=torch.float32)
    return torch.cat([pe_token, pos_emb], dim=1)


def official_lincls_strip(checkpoint, linear_keyword="head"):
    """moco-v3 main_lincls.py: keep module.base_encoder.* minus its head, prefix removed."""
    state_dict = dict(checkpoint["state_dict"])
    for k in list(state_dict.keys()):
        if k.startswith("module.base_encoder") and not k.startswith("module.base_encoder.%s" % linear_keyword):
            state_dict[k[len("module.base_encoder.") :]] = state_dict[k]
        del state_dict[k]
    return state_dict


# ----------------------------------------------------------------------------- the backbone


@pytest.mark.parametrize(
    "name,kwargs,width",
    [
        ("vit_tiny_patch16_224", "('img_size', 16, 'patch_size', 4, 'depth', 2)", 192),  # ViT-Ti: D = 192
        ("vit_small_patch16_224", "('img_size', 16, 'patch_size', 4, 'depth', 1)", 384),  # ViT-S: D = 384
        ("resnet18", "()", 512),  # ResNet-18: 512 channels in its last stage
    ],
)
def test_out_dim_and_pooling_are_read_from_the_model(name, kwargs, width):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.NAME", "TimmBackbone", "MODEL.BACKBONE.TIMM.MODEL", name, "MODEL.BACKBONE.TIMM.KWARGS", kwargs])
    backbone = build_backbone(cfg).eval()
    assert backbone.out_dim == width
    x = torch.randn(2, 3, 16, 16)
    features = backbone(x)
    assert features.shape == (2, width)
    tokens_or_maps = backbone.model.forward_features(x)  # (N, 1 + T, D) tokens, or (N, C, h, w) maps
    pooled = tokens_or_maps[:, 0] if name.startswith("vit") else tokens_or_maps.mean(dim=(2, 3))
    torch.testing.assert_close(features, pooled)  # class token / global average, not the classifier


def test_models_are_created_without_hub_weights(monkeypatch):
    calls = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: calls.append(k) or real(*a, **k))
    _vit()
    assert calls and calls[0]["pretrained"] is False and calls[0]["num_classes"] == 0


def test_mocov3_vit_position_embedding_init_and_frozen_patch_projection():
    backbone = _vit(freeze_patch_embed=True, mocov3_vit=True)
    vit = backbone.model
    torch.testing.assert_close(vit.pos_embed.detach(), official_sincos(4, 4, 192), rtol=0, atol=0)
    torch.testing.assert_close(sincos_2d_position_embedding((14, 14), 384), official_sincos(14, 14, 384), rtol=0, atol=0)
    frozen = sorted(name for name, p in backbone.named_parameters() if not p.requires_grad)
    assert frozen == ["model.patch_embed.proj.bias", "model.patch_embed.proj.weight", "model.pos_embed"]
    # vits.py: patch projection U(-b, b), b = sqrt(6 / (3 p^2 + D)); qkv: b = sqrt(6 / (3D / 3 + D)) per matrix.
    bound = (6 / (3 * 4 * 4 + 192)) ** 0.5
    assert bound * 0.95 < vit.patch_embed.proj.weight.abs().max() <= bound
    qkv_bound = (6 / (192 + 192)) ** 0.5
    assert qkv_bound * 0.95 < vit.blocks[0].attn.qkv.weight.abs().max() <= qkv_bound
    features = backbone(torch.randn(2, 3, 16, 16))
    features.sum().backward()
    assert vit.patch_embed.proj.weight.grad is None and vit.blocks[0].attn.qkv.weight.grad is not None


def test_an_unknown_model_name_is_refused_with_close_names():
    with pytest.raises(ValueError, match="not a timm model name; close names: vit_small_patch16_224"):
        TimmBackbone("vit_smal_patch16_224")


def test_vit_options_refuse_a_cnn():
    with pytest.raises(ValueError, match="need a ViT"):
        TimmBackbone("resnet18", {}, freeze_patch_embed=True)


# ----------------------------------------------------------------------------- weights


def _timm_vit_with_head(seed):
    torch.manual_seed(seed)
    return timm.create_model(VIT, pretrained=False, num_classes=10, **VIT_KWARGS)


def _assert_holds(backbone, timm_state):
    for key, value in backbone.model.state_dict().items():
        assert torch.equal(value, timm_state[key]), key


def test_reads_a_state_dict_made_by_timm(tmp_path):
    state = _timm_vit_with_head(1).state_dict()
    path = str(tmp_path / "vit.pth")
    torch.save(state, path)
    for fmt in (None, "timm"):
        backbone = _vit()
        report = load_backbone_weights(backbone, path, fmt)
        assert report.prefix == "" and report.dropped == 2  # head.weight, head.bias
        assert not report.missing and not report.unexpected and not report.mismatched
        _assert_holds(backbone, state)


def _mocov3_checkpoint(online, momentum):
    """A MoCo v3 ViT checkpoint's layout (main_moco.py save_checkpoint of the DDP-wrapped MoCo_ViT):
    base and momentum encoders whose `head` is the projector, the predictor, the optimizer."""
    projector = {
        "head.0.weight": torch.zeros(16, 192),
        "head.1.weight": torch.ones(16),
        "head.1.bias": torch.zeros(16),
        "head.1.running_mean": torch.zeros(16),
    }
    state = {}
    for prefix, encoder in (("module.momentum_encoder.", momentum), ("module.base_encoder.", online)):
        state.update({prefix + k: v for k, v in encoder.items() if not k.startswith("head.")})
        state.update({prefix + k: v for k, v in projector.items()})
    state["module.predictor.0.weight"] = torch.zeros(16, 16)
    return {"epoch": 300, "arch": "vit_small", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}


def test_reads_the_base_encoder_of_a_mocov3_checkpoint_as_main_lincls(tmp_path):
    online, momentum = _timm_vit_with_head(1).state_dict(), _timm_vit_with_head(2).state_dict()
    checkpoint = _mocov3_checkpoint(online, momentum)
    path = str(tmp_path / "vit-s-300ep.pth.tar")
    torch.save(checkpoint, path)
    # What the official linear evaluation loads into its ViT.
    reference = timm.create_model(VIT, pretrained=False, num_classes=10, **VIT_KWARGS)
    missing, _ = reference.load_state_dict(official_lincls_strip(checkpoint), strict=False)
    assert set(missing) == {"head.weight", "head.bias"}
    for fmt in (None, "mocov3"):
        backbone = _vit()
        report = load_backbone_weights(backbone, path, fmt)
        assert report.prefix == "module.base_encoder."
        assert not report.missing and not report.unexpected and not report.mismatched
        _assert_holds(backbone, reference.state_dict())


def test_reads_an_ssl_lab_mocov3_checkpoint_and_keeps_the_online_backbone(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs/Shapes/mocov3_vit_tiny.yaml"))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.BACKBONE.TIMM.KWARGS", str(tuple(x for kv in VIT_KWARGS.items() for x in kv))])
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.momentum_backbone.parameters():
            p.add_(1.0)
    path = str(tmp_path / "model_final.pth")
    torch.save({"model": model.state_dict(), "iteration": 3}, path)
    torch.manual_seed(1)
    fresh = build_model(cfg)
    report = load_backbone_weights(fresh, path)
    assert report.prefix == "backbone.model."
    for key, value in fresh.backbone.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key


def test_a_file_without_the_timm_model_is_refused():
    with pytest.raises(ValueError, match="no timm model"):
        import_backbone_state_dict({"model": {"linear.weight": torch.zeros(2, 2)}}, _vit().state_dict())
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}
    with pytest.raises(ValueError, match="no timm model"):
        import_backbone_state_dict(resnet, _vit().state_dict())


def test_model_zoo_lists_and_loads_a_timm_checkpoint(tmp_path, monkeypatch):
    """A catalog entry of format `timm` with a TimmBackbone config: get() builds the model and loads it."""
    import hashlib

    state = _timm_vit_with_head(3).state_dict()
    weights = tmp_path / "vit_tiny.pth"
    torch.save(state, weights)
    config = tmp_path / "vit_tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "_BASE_": os.path.join(REPO_ROOT, "configs/Shapes/mocov3_vit_tiny.yaml"),
                "MODEL": {"DEVICE": "cpu", "BACKBONE": {"TIMM": {"KWARGS": str(tuple(x for kv in VIT_KWARGS.items() for x in kv))}}},
            }
        )
    )
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "vit_tiny_timm": {
                    "config": str(config),
                    "url": weights.as_uri(),
                    "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                    "format": "timm",
                    "source": "made by timm in this test",
                }
            }
        )
    )
    monkeypatch.setenv("SSL_LAB_MODEL_ZOO_CATALOG", str(catalog))
    monkeypatch.setenv("SSL_LAB_CACHE", str(tmp_path / "cache"))
    model = model_zoo.get("vit_tiny_timm")
    assert isinstance(model.backbone, TimmBackbone)
    _assert_holds(model.backbone, state)
    assert isinstance(model.projector, nn.Module)
