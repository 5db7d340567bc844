"""OUTPUT_DIR of one run: the one place that decides whether a run may use it, and what it writes there.

Before a run is accepted nothing in the folder changes: `check` only reads (writable, not holding
another run's checkpoints, no live run in it; on resume, the saved config.yaml defines the run).
`accept` then takes the folder's lock (held until `release`, at the end of training, or the end of
the process), removes temporary files of killed processes and writes config.yaml atomically.
"""

import logging
import os
import shutil
from typing import Optional

import portalocker
import yaml

from ssl_lab.checkpoint.checkpointer import checkpoint_files
from ssl_lab.config import ConfigError
from ssl_lab.utils.errors import UserError
from ssl_lab.utils.files import atomic_write, stale_temp_files

__all__ = ["DEFINING_KEYS", "OutputDirError", "OutputDirInUseError", "ResumeConfigError", "RunDirectory", "changed_keys"]

logger = logging.getLogger("ssl_lab")

# Config keys (and key prefixes, ending in ".") that define what a run computes: a resume that changes
# one of them would continue a different run from this run's weights and optimizer state.
DEFINING_KEYS = ("SEED", "MODEL.", "SOLVER.", "INPUT.", "DATASETS.TRAIN")
# Keys under those prefixes that change how a run is executed or saved, not what it computes.
OPERATIONAL_KEYS = (
    "MODEL.DEVICE",
    "MODEL.WEIGHTS",
    "SOLVER.CHECKPOINT_PERIOD",
    "SOLVER.MAX_TO_KEEP",
    "SOLVER.NON_FINITE_LOSS",
    "SOLVER.NON_FINITE_CHECK_PERIOD",
    "SOLVER.COMPILE",
    "SOLVER.CHANNELS_LAST",
)

LOCK_FILE = "run.lock"


class OutputDirError(UserError, OSError):
    """OUTPUT_DIR cannot be used: not a directory, not writable, or too little free space."""


class OutputDirInUseError(UserError, RuntimeError):
    """OUTPUT_DIR already holds checkpoints of another run, or a live run writes to it."""


class ResumeConfigError(ConfigError):
    """--resume with a config that defines another run than the one saved in OUTPUT_DIR."""


def _flatten(node, prefix: str = "") -> dict:
    """{"A.B.C": value} of a nested mapping; tuples as lists (as config.yaml stores them)."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def _defines_the_run(key: str) -> bool:
    return key not in OPERATIONAL_KEYS and any(key == k or (k.endswith(".") and key.startswith(k)) for k in DEFINING_KEYS)


def changed_keys(saved: dict, cfg) -> list:
    """[(key, saved value, new value)] of the keys of the saved config that define the run and differ
    in `cfg`. SEED -1 (draw one) takes the saved seed and is no change; a saved key `cfg` lacks (a project
    no longer imported) is a change; a key the saved config lacks (added by a later version) is not; a saved key
    under a name registered as renamed is compared under its new name."""
    old = {cfg.renamed_to(key): value for key, value in _flatten(saved).items()}
    new = _flatten(cfg)
    changes = []
    for key in sorted(old):
        if not _defines_the_run(key) or (key == "SEED" and new.get(key, -1) < 0):
            continue
        if old[key] != new.get(key, "(absent)"):
            changes.append((key, old[key], new.get(key, "(absent)")))
    return changes


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


class RunDirectory:
    """The OUTPUT_DIR of a run (see the module docstring)."""

    def __init__(self, path: str):
        if not path:
            raise OutputDirError("OUTPUT_DIR is empty; set it to the directory for checkpoints and logs")
        self.path = path
        self._lock: Optional[portalocker.Lock] = None

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def has_checkpoint(self) -> bool:
        """Any model file or `last_checkpoint` (the rule the checkpointer resumes by)."""
        return bool(checkpoint_files(self.path))

    def saved_config(self) -> Optional[dict]:
        """The config.yaml of the run in this folder (a plain nested dict), or None if there is none."""
        try:
            with open(self.file("config.yaml")) as f:
                saved = yaml.safe_load(f)
        except FileNotFoundError:
            return None
        except (OSError, yaml.YAMLError) as err:
            raise OutputDirError(
                f"OUTPUT_DIR '{self.path}': config.yaml of the saved run cannot be read ({err}); "
                f"restore it, or set OUTPUT_DIR to a new directory"
            ) from None
        return saved if isinstance(saved, dict) else None

    def resumed_seed(self, cfg, resume: bool) -> int:
        """The seed this start runs with: on a resume of a run with checkpoints, the saved run's seed
        when SEED is -1 (its drawn seed drives the data order and augmentation); else SEED."""
        if not (resume and cfg.SEED < 0 and self.has_checkpoint()):
            return cfg.SEED
        saved = self.saved_config()
        if saved is None or not isinstance(saved.get("SEED"), int) or saved["SEED"] < 0:
            raise ResumeConfigError(
                f"--resume with SEED -1, but OUTPUT_DIR '{self.path}' has no config.yaml with the "
                f"seed of the run it holds; set SEED to that run's seed (its log.txt names it)"
            )
        return saved["SEED"]

    def check_writable(self) -> None:
        """Refuse a path below a file, or one this user cannot write to."""
        existing = _existing_ancestor(self.path)
        if not os.path.isdir(existing):
            raise OutputDirError(f"OUTPUT_DIR '{self.path}': '{existing}' is a file, not a directory; choose another OUTPUT_DIR")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputDirError(f"OUTPUT_DIR '{self.path}' is not writable ('{existing}' denies writing); choose another OUTPUT_DIR")

    def check(self, cfg, resume: bool, allow_config_change: bool = False) -> None:
        """Refuse a folder this run cannot use; reads only, so a refused run leaves it as it was.

        Without `resume`, a folder with checkpoints is refused; with it, a saved config.yaml that
        differs from `cfg` (resolved schedule) in a key that defines the run is refused, naming every
        such key, unless `allow_config_change`.
        """
        self.check_writable()
        self._check_not_live()
        if not self.has_checkpoint():
            return
        if not resume:
            raise OutputDirInUseError(
                f"OUTPUT_DIR '{self.path}' already holds checkpoints of a run. Pass --resume to continue "
                f"that run, or set OUTPUT_DIR to a new directory."
            )
        saved = self.saved_config()
        changes = changed_keys(saved, cfg) if saved is not None else []
        if changes and not allow_config_change:
            shown = [f"  {key}: {old!r} -> {new!r}" for key, old, new in changes[:8]]
            more = [f"  ... and {len(changes) - 8} more"] if len(changes) > 8 else []
            raise ResumeConfigError(
                "\n".join(
                    [
                        f"--resume: the config differs from the run saved in '{self.file('config.yaml')}' in what "
                        f"defines the run (saved -> now):",
                        *shown,
                        *more,
                        "Resume with the saved values, set OUTPUT_DIR to a new directory, or pass --allow-config-change "
                        "to continue the saved weights under the new values.",
                    ]
                )
            )
        for key, old, new in changes:
            logger.warning(f"--allow-config-change: {key} changes from {old!r} to {new!r} on resume")

    def _check_not_live(self) -> None:
        """Refuse a folder whose lock a live process holds (two runs would interleave metrics.json
        and overwrite each other's checkpoints). Opens the lock file read-only: creates nothing."""
        if not os.path.isfile(self.file(LOCK_FILE)) or self._lock is not None:
            return
        with open(self.file(LOCK_FILE)) as f:
            try:
                portalocker.lock(f, portalocker.LOCK_EX | portalocker.LOCK_NB)
                portalocker.unlock(f)
            except portalocker.LockException:
                owner = f.read().strip() or "another process"
                raise OutputDirInUseError(
                    f"OUTPUT_DIR '{self.path}' is in use by a live run (pid {owner}); wait "
                    f"for it to end, stop it, or set OUTPUT_DIR to a new directory"
                ) from None

    def check_free_space(self, bytes_per_checkpoint: int, max_to_keep: int, num_periodic: int) -> None:
        """Fail before training if the folder cannot hold the checkpoints this run will keep.

        At its peak the run holds the newest `max_to_keep` of its `num_periodic` periodic checkpoints
        (0: all of them) plus the one being written (the next periodic one or `model_final`); the
        oldest is removed only after the new one is complete. Checkpoints already there (a resumed
        run) are replaced, not added to, so their size counts as available.
        """
        kept = min(max_to_keep, num_periodic) if max_to_keep else num_periodic
        needed = bytes_per_checkpoint * (kept + 1)
        existing = sum(os.path.getsize(p) for p in checkpoint_files(self.path) if os.path.isfile(p))
        free = shutil.disk_usage(_existing_ancestor(self.path)).free
        if free + existing < needed:
            raise OutputDirError(
                f"OUTPUT_DIR '{self.path}' has {free / 2**20:.0f} MiB free but checkpoints need "
                f"about {(needed - existing) / 2**20:.0f} MiB more; free space or choose another "
                f"OUTPUT_DIR (or lower SOLVER.MAX_TO_KEEP)"
            )

    def accept(self, cfg) -> None:
        """Take the folder for the run of `cfg`, once :meth:`check` passed and its weights are loaded: take
        the folder's lock, remove temporary files of killed processes, write config.yaml atomically."""
        os.makedirs(self.path, exist_ok=True)
        lock = portalocker.Lock(
            self.file(LOCK_FILE), mode="a", timeout=0, fail_when_locked=True, flags=portalocker.LOCK_EX | portalocker.LOCK_NB
        )
        try:
            handle = lock.acquire()
        except portalocker.LockException:  # a run started since the check
            self._check_not_live()
            raise
        self._lock = lock
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        for path in stale_temp_files(self.path):
            os.remove(path)
            logger.info(f"Removed {path}, left by a process killed while writing it")
        with atomic_write(self.file("config.yaml"), "w") as f:
            f.write(cfg.dump())
        logger.info(f"Full config saved to {self.file('config.yaml')}")

    def release(self) -> None:
        """Give the lock back (a process's lock is also released when it exits)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
