from ssl_lab.config import ConfigError
from ssl_lab.data import build_test_loader
from ssl_lab.utils.registry import Registry

from .classification import ClassificationEvaluator
from .knn import KNNEvaluator

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Registry for the evaluators named in `cfg.TEST.EVALUATORS`. A registered object is called as
`obj(cfg)` and returns a :class:`DatasetEvaluator` on DATASETS.TEST[0]. Projects register theirs.
"""


@EVALUATOR_REGISTRY.register()
def KNN(cfg):  # noqa: N802 (the registered name)
    """Weighted kNN of backbone features; memory: TEST.KNN.MEMORY_DATASET or the training split
    (at most TEST.KNN.MEMORY_PER_CLASS images per class when > 0)."""
    knn = cfg.TEST.KNN
    memory = knn.MEMORY_DATASET or cfg.DATASETS.TRAIN[0]
    memory_loader = build_test_loader(cfg, memory, max_per_class=knn.MEMORY_PER_CLASS)
    if knn.K > len(memory_loader.dataset):
        raise ConfigError(f"TEST.KNN.K = {knn.K} is more than the {len(memory_loader.dataset)} images of the "
                          f"kNN memory split '{memory}'; lower TEST.KNN.K")
    return KNNEvaluator(memory_loader, build_test_loader(cfg, cfg.DATASETS.TEST[0]), k=knn.K,
                        temperature=knn.TEMPERATURE, query_chunk=knn.QUERY_CHUNK_SIZE,
                        memory_chunk=knn.MEMORY_CHUNK_SIZE)


@EVALUATOR_REGISTRY.register()
def Classification(cfg):  # noqa: N802
    """Top-k accuracy of the model's own classifier (`model.classify`), e.g. a LinearClassifier."""
    return ClassificationEvaluator(build_test_loader(cfg, cfg.DATASETS.TEST[0]))


def build_evaluators(cfg) -> list:
    """The evaluators of TEST.EVALUATORS on DATASETS.TEST[0]; none without a test split."""
    if not cfg.DATASETS.TEST:
        return []
    return [EVALUATOR_REGISTRY.get(name)(cfg) for name in cfg.TEST.EVALUATORS]
