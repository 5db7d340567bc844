"""EqCo (Zhu et al., 2020): equivalent rules for contrastive learning, as an ssl_lab project.

Importing this package registers `EqCoLoss` in ssl_lab's loss registry; a config with
`IMPORTS: ["projects/EqCo/eqco"]` has it imported and `add_config` called by the core.
"""
from .config import add_eqco_config, negatives_per_query
from .loss import EqCoLoss, mi_lower_bound
from .monitor import ContrastiveMonitor
from .trainer import EqCoTrainer

add_config = add_eqco_config

__all__ = ["add_config", "add_eqco_config", "negatives_per_query", "EqCoLoss", "mi_lower_bound", "ContrastiveMonitor",
           "EqCoTrainer"]
