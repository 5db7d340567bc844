from .classification import ClassificationEvaluator
from .knn import KNNEvaluator, extract_features, topk_accuracy, weighted_knn_predict

__all__ = ["ClassificationEvaluator", "KNNEvaluator", "extract_features", "topk_accuracy", "weighted_knn_predict"]
