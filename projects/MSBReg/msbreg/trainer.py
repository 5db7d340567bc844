from ssl_lab.engine import DefaultTrainer
from ssl_lab.evaluation import KNNEvaluator

from .monitor import CollapseKNNEvaluator


class MSBRegTrainer(DefaultTrainer):
    """DefaultTrainer whose kNN evaluation also reports the backbone's collapse statistics."""

    @classmethod
    def build_evaluator(cls, cfg):
        evaluator = super().build_evaluator(cfg)
        return CollapseKNNEvaluator(evaluator) if isinstance(evaluator, KNNEvaluator) else evaluator
