"""EqCo (Zhu et al., 2020): equivalent rules for contrastive learning, as an ssl_lab project.

Importing this package registers `EqCoLoss` in ssl_lab's loss registry.
"""
from .config import add_eqco_config, negatives_per_query
from .loss import EqCoLoss, mi_lower_bound
from .monitor import ContrastiveMonitor
from .trainer import EqCoTrainer

__all__ = ["add_eqco_config", "negatives_per_query", "EqCoLoss", "mi_lower_bound", "ContrastiveMonitor",
           "EqCoTrainer"]
