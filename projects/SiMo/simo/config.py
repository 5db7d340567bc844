"""The SiMo project's config keys (and EqCo's, whose loss SiMo trains with)."""
from ssl_lab.config import CfgNode as CN
from ssl_lab.config import import_project

# SiMo's loss is EqCoLoss: importing the EqCo project registers it.
_eqco = import_project("projects/EqCo/eqco")


def add_simo_config(cfg) -> None:
    """Add the MODEL.SIMO node to `cfg` (in place)."""
    cfg.MODEL.SIMO = CN()
    # Shuffle-BN in the key encoder (MoCo's trick), the ablation of the paper's Table 7;
    # SiMo itself syncs BN across ranks instead (MODEL.BACKBONE.NORM / PROJECTOR.NORM "SyncBN").
    cfg.MODEL.SIMO.SHUFFLE_BN = False


def add_config(cfg) -> None:
    """MODEL.SIMO, plus EqCo's MODEL.EQCO unless the EqCo project added it already."""
    if "EQCO" not in cfg.MODEL:
        _eqco.add_eqco_config(cfg)
    add_simo_config(cfg)
