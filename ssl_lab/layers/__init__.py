from .batch_norm import NaiveSyncBatchNorm, get_norm_layer
from .shuffle_bn import batch_shuffle, batch_unshuffle

__all__ = ["NaiveSyncBatchNorm", "get_norm_layer", "batch_shuffle", "batch_unshuffle"]
