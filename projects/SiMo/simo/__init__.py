"""SiMo (EqCo paper, Sec. 3): MoCo v2 without the memory bank, as an ssl_lab project.

Importing this package registers the `SiMo` meta-architecture (and, through the EqCo
project, `EqCoLoss`); `add_config(cfg)` adds the MODEL.SIMO and MODEL.EQCO keys.
"""
from .config import add_config, add_simo_config
from .simo import SiMo, drop_own_keys

__all__ = ["add_config", "add_simo_config", "SiMo", "drop_own_keys"]
