from ssl_lab.engine import DefaultTrainer

from .monitor import CollapseKNNEvaluator


class MSBRegTrainer(DefaultTrainer):
    """DefaultTrainer whose kNN evaluation also reports the backbone's collapse statistics."""

    @classmethod
    def build_evaluator(cls, cfg):
        return CollapseKNNEvaluator(super().build_evaluator(cfg))
