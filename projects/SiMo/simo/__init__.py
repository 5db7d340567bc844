"""SiMo (EqCo paper, Sec. 3): MoCo v2 without the memory bank, as an ssl_lab project.

Importing this package registers the `SiMo` meta-architecture; `add_config(cfg)` adds the
MODEL.SIMO keys. SiMo trains with any loss of similarities: its configs use EqCoLoss, so they
list the EqCo project before it in IMPORTS.
"""

from .config import add_config, add_simo_config
from .simo import SiMo, drop_own_keys

__all__ = ["add_config", "add_simo_config", "SiMo", "drop_own_keys"]
