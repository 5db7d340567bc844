"""Seeding and determinism."""
import logging
import os
import random
from datetime import datetime

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_all_rng(seed: int = None) -> int:
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
