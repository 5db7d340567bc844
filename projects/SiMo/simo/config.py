"""The SiMo project's config keys."""

from ssl_lab.config import CfgNode as CN


def add_simo_config(cfg) -> None:
    """Add the MODEL.SIMO node to `cfg` (in place)."""
    cfg.MODEL.SIMO = CN()
    # Shuffle-BN in the key encoder (MoCo's trick), the ablation of the paper's Table 7;
    # SiMo itself syncs BN across ranks instead (MODEL.BACKBONE.NORM / PROJECTOR.NORM "SyncBN").
    cfg.MODEL.SIMO.SHUFFLE_BN = False


add_config = add_simo_config  # the name ssl_lab looks for in a package listed in IMPORTS
