from .batch_norm import NaiveSyncBatchNorm, convert_sync_batchnorm, get_norm
from .shuffle_bn import batch_shuffle, batch_unshuffle

__all__ = ["NaiveSyncBatchNorm", "convert_sync_batchnorm", "get_norm", "batch_shuffle", "batch_unshuffle"]
