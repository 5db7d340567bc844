"""Model zoo: a catalog of checkpoints, verified cached downloads, and importers of published weights.

Usage:
    model = ssl_lab.model_zoo.get("moco_v2_200ep")           # model with pretrained backbone
    cfg.MODEL.WEIGHTS = "ssl_lab://moco_v2_200ep"            # any path argument accepts this
    load_backbone_weights(model, "resnet50-0676ba61.pth")   # torchvision / MoCo / ... files
"""

from ssl_lab.utils.errors import ModelZooError, UnknownModelError
from ssl_lab.utils.model_catalog import CatalogEntry, get_entry, load_catalog
from ssl_lab.utils.download import Checksum, cache_dir
from ssl_lab.checkpoint.backbone_weights import (
    ImportReport,
    find_backbone_prefix,
    import_backbone_state_dict,
    load_backbone_weights,
)

from .model_zoo import get, get_checkpoint_url, get_config, get_config_file

__all__ = [
    "CatalogEntry",
    "Checksum",
    "ImportReport",
    "ModelZooError",
    "UnknownModelError",
    "cache_dir",
    "find_backbone_prefix",
    "get",
    "get_checkpoint_url",
    "get_config",
    "get_config_file",
    "get_entry",
    "import_backbone_state_dict",
    "load_backbone_weights",
    "load_catalog",
]
