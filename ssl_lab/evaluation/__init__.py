from .build import EVALUATOR_REGISTRY, build_evaluators, check_weights_for_evaluation
from .classification import ClassificationEvaluator
from .evaluator import DatasetEvaluator, inference_on_dataset, inference_on_evaluators
from .knn import KNNEvaluator, extract_features, topk_accuracy
from .results import save_eval_results

__all__ = [k for k in dict(globals()) if not k.startswith("_")]
