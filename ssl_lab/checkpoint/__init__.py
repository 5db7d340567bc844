from .checkpointer import Checkpointer, DiskFullError, estimate_checkpoint_bytes

__all__ = ["Checkpointer", "DiskFullError", "estimate_checkpoint_bytes"]
