"""fvcore's Checkpointer with atomic writes, a fallback past corrupt files on resume,
and reads through ssl_lab's PathManager (URLs, ssl_lab://)."""
import glob
import os
import pickle

import torch
from fvcore.common.checkpoint import Checkpointer as _FvcoreCheckpointer

from ssl_lab.utils.errors import MissingFileError, UserError
from ssl_lab.utils.file_io import PathManager
from ssl_lab.utils.files import atomic_write


class CorruptCheckpointError(UserError, RuntimeError):
    """Every checkpoint of a run to resume is unreadable."""


def checkpoint_files(save_dir: str) -> list:
    """The checkpoints a resume of `save_dir` tries, in order: the one `last_checkpoint` names, then
    every other `model_*.pth`, newest first. The one rule of "this folder holds a checkpoint": a kill
    between writing a model file and `last_checkpoint` still leaves a resumable folder."""
    last = ""
    try:
        with open(os.path.join(save_dir, "last_checkpoint")) as f:
            last = os.path.join(save_dir, f.read().strip())
    except OSError:
        pass
    others = sorted(glob.glob(os.path.join(glob.escape(save_dir), "model_*.pth")), key=os.path.getmtime, reverse=True)
    first = [last] if last else []
    return first + [p for p in others if os.path.abspath(p) != os.path.abspath(last)]


class Checkpointer(_FvcoreCheckpointer):
    """Saves/loads the model and its checkpointables.

    A checkpoint file appears only once complete (temporary file, fsync, rename) and
    `last_checkpoint` is updated after it, so a kill at any moment leaves the previous
    checkpoint usable. On resume, an unreadable newest checkpoint is reported by name
    and the next older one is used.
    """

    def __init__(self, model, save_dir: str = "", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.path_manager = PathManager

    def save(self, name: str, **kwargs) -> None:
        """Every rank calls this (checkpointables such as the per-rank RNG state gather from
        all ranks); only the one with `save_to_disk` writes."""
        if not self.save_dir:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        if not self.save_to_disk:
            return
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {path}")
        with atomic_write(path) as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)

    def load(self, path: str, checkpointables=None):
        if path and "://" not in path and not os.path.isfile(path):
            raise MissingFileError(f"Checkpoint '{path}' does not exist (MODEL.WEIGHTS or --resume)")
        return super().load(path, checkpointables)

    def has_checkpoint(self) -> bool:
        return bool(self.save_dir) and bool(checkpoint_files(self.save_dir))

    def resume_or_load(self, path: str, *, resume: bool = True):
        if not (resume and self.has_checkpoint()):
            return self.load(path, checkpointables=[])
        bad = []
        for candidate in checkpoint_files(self.save_dir):
            try:
                return self.load(candidate)  # torch.load fails before anything is modified
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
                self.logger.error(f"Checkpoint {candidate} is corrupt or truncated ({type(err).__name__}: {err}); "
                                  f"falling back to an older one")
                bad.append(candidate)
        raise CorruptCheckpointError(
            f"No readable checkpoint in {self.save_dir}: {', '.join(bad)} cannot be read. Delete them to start "
            f"over, or set OUTPUT_DIR to a new directory.")
