"""fvcore's Checkpointer reading through ssl_lab's PathManager (URLs, ssl_lab://), with clear errors."""
import os

from fvcore.common.checkpoint import Checkpointer as _FvcoreCheckpointer

from ssl_lab.utils.file_io import PathManager


class Checkpointer(_FvcoreCheckpointer):
    """Saves/loads model + checkpointables; `load(path)` accepts local paths and URLs."""

    def __init__(self, model, save_dir: str = "", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.path_manager = PathManager

    def load(self, path: str, checkpointables=None):
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint '{path}' does not exist (MODEL.WEIGHTS or --resume)")
        return super().load(path, checkpointables)
