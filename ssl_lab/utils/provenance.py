"""Where a reported number comes from: the code (git commit, uncommitted changes to tracked files),
the torch version and the machine of the run."""

import datetime
import os
import platform
import subprocess
from typing import Optional

import torch

__all__ = ["cpu_model", "machine_description", "run_provenance"]


def _git(repo_dir: str, *args: str) -> Optional[str]:
    """stdout of `git -C repo_dir ARGS`, or None where git or the checkout is missing."""
    try:
        return subprocess.run(["git", "-C", repo_dir, *args], capture_output=True, text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """E.g. "AMD EPYC, 2 CPU cores" or "..., 64 CPU cores, 8x NVIDIA H100 80GB HBM3"."""
    text = f"{cpu_model()}, {os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        text += f", {count}x {torch.cuda.get_device_name(0)}"
    return text


def run_provenance(repo_dir: str) -> dict:
    """commit (full hash of HEAD, "unknown" outside a git checkout), dirty (uncommitted changes to
    tracked files; None if unknown), torch, machine and date (UTC) of a run of the code in `repo_dir`."""
    head = _git(repo_dir, "rev-parse", "HEAD")
    status = _git(repo_dir, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": head.strip() if head else "unknown",
        "dirty": bool(status.strip()) if head and status is not None else None,
        "torch": torch.__version__,
        "machine": machine_description(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
    }
