from .knn import KNNEvaluator, extract_features, topk_accuracy, weighted_knn_predict

__all__ = ["KNNEvaluator", "extract_features", "topk_accuracy", "weighted_knn_predict"]
