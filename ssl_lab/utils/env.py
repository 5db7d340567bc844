"""Seeding and determinism."""

import logging
import os
import random
from datetime import datetime
from typing import Optional

import numpy as np
import torch

from ssl_lab.utils import comm

logger = logging.getLogger(__name__)


def seed_all_rng(seed: Optional[int] = None) -> int:
    """Seed Python, NumPy and torch. A negative/None seed is drawn from time and pid."""
    if seed is None or seed < 0:
        seed = (os.getpid() + int(datetime.now().strftime("%S%f"))) % (2**31)
        logger.info(f"Using a generated random seed {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels (cuDNN and torch algorithms) for bit-reproducible runs."""
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class RNGState:
    """Checkpointable state of the Python, NumPy and torch (CPU and CUDA) generators of every rank.

    `state_dict` is a collective (it gathers all ranks' states), so every rank calls it
    when a checkpoint is saved; `load_state_dict` gives each rank its own state back.
    """

    @staticmethod
    def _local_state() -> dict:
        numpy_state = np.random.get_state()
        state = {
            "python": random.getstate(),
            # numpy's stub types get_state() as a dict; without arguments (legacy=True) it returns the tuple
            "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),  # type: ignore[index]
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def state_dict(self) -> dict:
        return {"ranks": comm.all_gather_object(self._local_state())}

    def load_state_dict(self, state: dict) -> None:
        ranks = state.get("ranks", [state])  # checkpoints before per-rank states held rank 0's only
        if len(ranks) != comm.get_world_size():
            logger.warning(
                f"The checkpoint holds the RNG states of {len(ranks)} ranks but this run has "
                f"{comm.get_world_size()}: the generators keep their seeded state, so the "
                f"random draws differ from an uninterrupted run"
            )
            return
        local = ranks[comm.get_rank()]
        random.setstate(local["python"])
        name, keys, *rest = local["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        torch.set_rng_state(local["torch"])
        if "cuda" in local and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(local["cuda"])
