"""fvcore's Checkpointer with atomic writes, a fallback past corrupt files on resume,
and reads through ssl_lab's PathManager (URLs, ssl_lab://)."""

import errno
import glob
import os
import pickle
import shutil

import torch
from fvcore.common.checkpoint import Checkpointer as _FvcoreCheckpointer

from ssl_lab.utils.errors import MissingFileError, UserError
from ssl_lab.utils.file_io import PathManager
from ssl_lab.utils.files import atomic_write


class CorruptCheckpointError(UserError, RuntimeError):
    """Every checkpoint of a run to resume is unreadable."""


class DiskFullError(UserError, OSError):
    """The disk filled while a checkpoint was written; the previous checkpoint is intact."""


def _tensor_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def estimate_checkpoint_bytes(model, optimizer=None) -> int:
    """Size of a checkpoint of `model` and `optimizer` once training has started: the model's state
    dict (momentum encoder, queue and BN buffers included) plus the optimizer's state, which SGD and
    LARS create at the first step (a momentum buffer per trainable parameter when momentum != 0)."""
    size = _tensor_bytes(model.state_dict())
    if optimizer is not None:
        size += _tensor_bytes(optimizer.state_dict()["state"])
        if not optimizer.state:  # before the first step
            size += sum(
                p.numel() * p.element_size()
                for group in optimizer.param_groups
                if group.get("momentum")
                for p in group["params"]
                if p.requires_grad
            )
    return size


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
    checkpoint usable; a disk that fills during a save raises DiskFullError naming the file,
    the space and the intact checkpoint. On resume, an unreadable newest checkpoint is
    reported by name, the next older one is used and becomes `last_checkpoint`.
    """

    def __init__(self, model, save_dir: str = "", **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.path_manager = PathManager
        self.resumed_past_corrupt = False  # set by resume_or_load: the newest checkpoint was unreadable

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
        try:
            with atomic_write(path) as f:
                torch.save(data, f)
        except OSError as err:  # torch.save wraps the OSError of a full disk in a RuntimeError: see below
            raise self._disk_full(path, data, err) if err.errno in (errno.ENOSPC, errno.EDQUOT) else err
        except RuntimeError as err:
            cause = err.__cause__ or err.__context__
            if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._disk_full(path, data, cause) from None
            raise
        self.tag_last_checkpoint(basename)

    def _disk_full(self, path: str, data, err: OSError) -> DiskFullError:
        """The error of a save that ran out of space: the file, the space, and what is intact."""
        free = shutil.disk_usage(self.save_dir).free
        last = self.get_checkpoint_file() if self.has_checkpoint() else ""
        intact = (
            f"the last checkpoint {last} is intact (last_checkpoint names it; --resume continues from it)"
            if last
            else "no earlier checkpoint of this run exists"
        )
        return DiskFullError(
            f"No space left while writing checkpoint {path} ({os.strerror(err.errno)}): {free / 2**20:.0f} MiB free, "
            f"the checkpoint needs about {_tensor_bytes(data) / 2**20:.0f} MiB. The partial file was removed and "
            f"{intact}. Free space, lower SOLVER.MAX_TO_KEEP or choose another OUTPUT_DIR, then run with --resume."
        )

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
                checkpoint = self.load(candidate)  # torch.load fails before anything is modified
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
                self.logger.error(
                    f"Checkpoint {candidate} is corrupt or truncated ({type(err).__name__}: {err}); falling back to an older one"
                )
                bad.append(candidate)
                continue
            self.resumed_past_corrupt = bool(bad)
            if bad and self.save_to_disk:  # last_checkpoint must never name an unreadable file
                self.tag_last_checkpoint(os.path.basename(candidate))
            return checkpoint
        raise CorruptCheckpointError(
            f"No readable checkpoint in {self.save_dir}: {', '.join(bad)} cannot be read. Delete them to start "
            f"over, or set OUTPUT_DIR to a new directory."
        )
