"""EqCo (Zhu et al., 2020): equivalent rules for contrastive learning, as an ssl_lab project.

Importing this package registers `EqCoLoss` in ssl_lab's loss registry and the `EqCoMonitor`
hook (K check + ContrastiveMonitor) in its hook registry; a config with
`IMPORTS: ["projects/EqCo/eqco"]` has it imported and `add_config` called by the core, and
`EXTRA_HOOKS: ["EqCoMonitor"]` has DefaultTrainer add the hook.
"""

from .config import add_eqco_config, negatives_per_query
from .loss import EqCoLoss, mi_lower_bound
from .monitor import ContrastiveMonitor, EqCoMonitor

add_config = add_eqco_config

__all__ = ["add_config", "add_eqco_config", "negatives_per_query", "EqCoLoss", "mi_lower_bound", "ContrastiveMonitor", "EqCoMonitor"]
