from ssl_lab.config import ConfigError
from ssl_lab.data import build_test_loader
from ssl_lab.utils.registry import Registry

from .classification import ClassificationEvaluator
from .knn import KNNEvaluator
from .linear_probe import LinearProbeEvaluator

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Registry for the evaluators named in `cfg.TEST.EVALUATORS`. An entry is called as `entry(cfg)`
and returns a :class:`DatasetEvaluator` on DATASETS.TEST[0]. Projects register theirs.
"""


@EVALUATOR_REGISTRY.register()
def KNN(cfg):  # noqa: N802 (the registered name)
    """Weighted kNN of backbone features; memory: TEST.KNN.MEMORY_DATASET or the training split
    (at most TEST.KNN.MEMORY_PER_CLASS images per class when > 0)."""
    knn = cfg.TEST.KNN
    memory = knn.MEMORY_DATASET or cfg.DATASETS.TRAIN[0]
    memory_loader = build_test_loader(cfg, memory, max_per_class=knn.MEMORY_PER_CLASS)
    if knn.K > len(memory_loader.dataset):
        raise ConfigError(
            f"TEST.KNN.K = {knn.K} is more than the {len(memory_loader.dataset)} images of the "
            f"kNN memory split '{memory}'; lower TEST.KNN.K"
        )
    return KNNEvaluator(
        memory_loader,
        build_test_loader(cfg, cfg.DATASETS.TEST[0]),
        k=knn.K,
        temperature=knn.TEMPERATURE,
        query_chunk=knn.QUERY_CHUNK_SIZE,
        memory_chunk=knn.MEMORY_CHUNK_SIZE,
    )


@EVALUATOR_REGISTRY.register()
def Classification(cfg):  # noqa: N802
    """Top-k accuracy of the model's own classifier (`model.classify`), e.g. a LinearClassifier."""
    return ClassificationEvaluator(build_test_loader(cfg, cfg.DATASETS.TEST[0]))


@EVALUATOR_REGISTRY.register()
def LinearProbe(cfg):  # noqa: N802
    """A linear probe of backbone features (TEST.LINEAR_PROBE): fitted on DATASETS.TRAIN[0] with its lr
    chosen on a held-out part of it, scored on DATASETS.TEST[0]."""
    probe = cfg.TEST.LINEAR_PROBE
    train_loader = build_test_loader(cfg, cfg.DATASETS.TRAIN[0], max_per_class=probe.MAX_PER_CLASS)
    return LinearProbeEvaluator(
        train_loader,
        build_test_loader(cfg, cfg.DATASETS.TEST[0]),
        lrs=probe.LRS,
        steps=probe.STEPS,
        weight_decay=probe.WEIGHT_DECAY,
        holdout_fraction=probe.HOLDOUT_FRACTION,
    )


def build_evaluators(cfg) -> list:
    """The evaluators of TEST.EVALUATORS on DATASETS.TEST[0]; none without a test split."""
    if not cfg.DATASETS.TEST:
        return []
    return [EVALUATOR_REGISTRY.get(name)(cfg) for name in cfg.TEST.EVALUATORS]


def check_weights_for_evaluation(cfg, model, loaded_modules) -> None:
    """--eval-only: the Classification evaluator scores the model's own classifier, so its trained
    modules other than the backbone (a LinearClassifier's `fc`) must be among `loaded_modules`, the
    modules MODEL.WEIGHTS filled; else the top-1 would be that of a random classifier."""
    if "Classification" not in cfg.TEST.EVALUATORS:
        return
    trained = sorted({name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad and not name.startswith("backbone.")})
    absent = [name for name in trained if name not in loaded_modules]
    if absent:
        raise ConfigError(
            f"--eval-only: MODEL.WEIGHTS '{cfg.MODEL.WEIGHTS}' holds no {', '.join(absent)} (the "
            f"classifier that TEST.EVALUATORS 'Classification' scores); it is a pretraining "
            f"checkpoint or a bare backbone, so the top-1 would be that of a random classifier. "
            f"Pass the model_final.pth of a linear-evaluation run, or train one from these weights "
            f"(without --eval-only)"
        )
