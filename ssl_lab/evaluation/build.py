from fvcore.common.registry import Registry

from ssl_lab.data import build_test_loader

from .classification import ClassificationEvaluator
from .knn import KNNEvaluator

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Registry for the evaluators named in `cfg.TEST.EVALUATORS`. A registered object is called as
`obj(cfg)` and returns a :class:`DatasetEvaluator` on DATASETS.TEST[0]. Projects register theirs.
"""


@EVALUATOR_REGISTRY.register()
def KNN(cfg):  # noqa: N802 (the registered name)
    """Weighted kNN of backbone features; memory: TEST.KNN.MEMORY_DATASET or the training split."""
    memory = cfg.TEST.KNN.MEMORY_DATASET or cfg.DATASETS.TRAIN[0]
    return KNNEvaluator(build_test_loader(cfg, memory), build_test_loader(cfg, cfg.DATASETS.TEST[0]),
                        k=cfg.TEST.KNN.K, temperature=cfg.TEST.KNN.TEMPERATURE)


@EVALUATOR_REGISTRY.register()
def Classification(cfg):  # noqa: N802
    """Top-k accuracy of the model's own classifier (`model.classify`), e.g. a LinearClassifier."""
    return ClassificationEvaluator(build_test_loader(cfg, cfg.DATASETS.TEST[0]))


def build_evaluators(cfg) -> list:
    """The evaluators of TEST.EVALUATORS on DATASETS.TEST[0]; none without a test split."""
    if not cfg.DATASETS.TEST:
        return []
    return [EVALUATOR_REGISTRY.get(name)(cfg) for name in cfg.TEST.EVALUATORS]
