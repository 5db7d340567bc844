"""Checks of OUTPUT_DIR made before a run writes anything there: writable, not holding
another run's checkpoints, enough free space; and the clean-up of files a killed run left."""
import glob
import os
import re
import shutil

from ssl_lab.utils.errors import UserError

__all__ = ["OutputDirError", "OutputDirInUseError", "check_free_space", "check_output_dir", "has_checkpoint",
           "remove_stale_temp_files"]

_TEMP = re.compile(r".+\.tmp\.(\d+)$")


class OutputDirError(UserError, OSError):
    """OUTPUT_DIR cannot be used: not a directory, not writable, or too little free space."""


class OutputDirInUseError(UserError, RuntimeError):
    """OUTPUT_DIR already holds checkpoints of another run."""


def has_checkpoint(output_dir: str) -> bool:
    return os.path.isfile(os.path.join(output_dir, "last_checkpoint")) or bool(
        glob.glob(os.path.join(glob.escape(output_dir), "model_*.pth")))


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def check_output_dir(output_dir: str, resume: bool) -> None:
    """Refuse an OUTPUT_DIR that cannot be written or (without `resume`) holds checkpoints.

    Reads only: a refused run leaves the directory (or its absence) as it was.
    """
    if not output_dir:
        raise OutputDirError("OUTPUT_DIR is empty; set it to the directory for checkpoints and logs")
    existing = _existing_ancestor(output_dir)
    if not os.path.isdir(existing):
        raise OutputDirError(f"OUTPUT_DIR '{output_dir}': '{existing}' is a file, not a directory; "
                             f"choose another OUTPUT_DIR")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputDirError(f"OUTPUT_DIR '{output_dir}' is not writable ('{existing}' denies writing); "
                             f"choose another OUTPUT_DIR")
    if not resume and has_checkpoint(output_dir):
        raise OutputDirInUseError(
            f"OUTPUT_DIR '{output_dir}' already holds checkpoints of a run. Pass --resume to continue "
            f"that run, or set OUTPUT_DIR to a new directory.")


def check_free_space(output_dir: str, bytes_per_checkpoint: int, max_to_keep: int, num_periodic: int) -> None:
    """Fail before training if OUTPUT_DIR cannot hold the checkpoints this run will keep.

    At its peak the run holds the newest `max_to_keep` of its `num_periodic` periodic checkpoints
    (0: all of them) plus the one being written (the next periodic one or `model_final`); the
    oldest is removed only after the new one is complete. Checkpoints already there (a resumed
    run) are replaced, not added to, so their size counts as available.
    """
    kept = min(max_to_keep, num_periodic) if max_to_keep else num_periodic
    needed = bytes_per_checkpoint * (kept + 1)
    existing = sum(os.path.getsize(p) for p in glob.glob(os.path.join(glob.escape(output_dir), "model_*.pth")))
    free = shutil.disk_usage(_existing_ancestor(output_dir)).free
    if free + existing < needed:
        raise OutputDirError(f"OUTPUT_DIR '{output_dir}' has {free / 2**20:.0f} MiB free but checkpoints need "
                             f"about {(needed - existing) / 2**20:.0f} MiB more; free space or choose another "
                             f"OUTPUT_DIR (or lower SOLVER.MAX_TO_KEEP)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(output_dir: str) -> list:
    """Delete `<name>.tmp.<pid>` files of processes that no longer run (left by a kill
    during a checkpoint write); return their paths."""
    removed = []
    for path in glob.glob(os.path.join(glob.escape(output_dir), "*.tmp.*")):
        match = _TEMP.fullmatch(os.path.basename(path))
        if match and not _pid_alive(int(match.group(1))):
            os.remove(path)
            removed.append(path)
    return removed
