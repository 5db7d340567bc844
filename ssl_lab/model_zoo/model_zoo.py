"""Build models of the catalog, with their published weights."""

from torch import nn

from ssl_lab.checkpoint.backbone_weights import load_backbone_weights
from ssl_lab.config import CfgNode, get_cfg
from ssl_lab.modeling import build_model
from ssl_lab.utils.file_io import ModelZooHandler
from ssl_lab.utils.model_catalog import get_entry

__all__ = ["get", "get_checkpoint_url", "get_config", "get_config_file"]


def get_config_file(name: str) -> str:
    """Absolute path of the config of catalog entry `name`."""
    return get_entry(name).config_file


def get_checkpoint_url(name: str) -> str:
    """The catalog URL of `name`'s checkpoint (downloads use the mirror `$SSL_LAB_MODEL_ZOO_URL` if set)."""
    return get_entry(name).url


def get_config(name: str, trained: bool = False) -> CfgNode:
    """The config of `name` (its file plus the entry's `opts`); `trained` sets MODEL.WEIGHTS to it."""
    entry = get_entry(name)
    cfg = get_cfg()
    cfg.merge_from_file(entry.config_file)
    cfg.merge_from_list(list(entry.opts))
    if trained:
        cfg.MODEL.WEIGHTS = ModelZooHandler.PREFIX + name
    return cfg


def get(name: str, pretrained: bool = True) -> nn.Module:
    """The model of catalog entry `name`; with `pretrained`, its backbone holds the published weights.

    Example: ``model = ssl_lab.model_zoo.get("moco_v2_800ep"); feats = model.backbone(images)``
    """
    cfg = get_config(name, trained=pretrained)
    model = build_model(cfg)
    if pretrained:
        load_backbone_weights(model, cfg.MODEL.WEIGHTS, get_entry(name).format)
    return model
