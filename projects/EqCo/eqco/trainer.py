"""DefaultTrainer plus the EqCo project's build-time checks and training monitors."""
from ssl_lab.engine import DefaultTrainer

from .config import negatives_per_query
from .monitor import ContrastiveMonitor


class EqCoTrainer(DefaultTrainer):
    """Checks the negatives per query before building (with or without EqCoLoss) and adds
    :class:`ContrastiveMonitor` when MODEL.EQCO asks for a monitor."""

    @classmethod
    def build_model(cls, cfg):
        negatives_per_query(cfg)
        return super().build_model(cfg)

    def build_hooks(self):
        eqco = self.cfg.MODEL.EQCO
        hook_list = super().build_hooks()
        if eqco.MONITOR_MI_BOUND or eqco.MONITOR_GRAD_NORM:
            hook_list.append(ContrastiveMonitor(eqco.MONITOR_MI_BOUND, eqco.MONITOR_GRAD_NORM))
        return hook_list
