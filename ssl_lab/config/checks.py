"""Checks of the config's numbers and device, run before anything is built or written.

Each failure is a ConfigError naming the key, the value, and what would be right.
Checks that need the data (classes, kNN K against the memory split) or the method
(negatives against the batch) run where those are built.
"""

import math

import torch

from ssl_lab.utils.file_io import PathManager

from .config import ConfigError

__all__ = ["check_config", "check_device", "check_knn", "check_weights_scheme"]

# mallopt takes an int number of bytes: 2**31 - 1 bytes is 2047 MiB and a bit.
MAX_HOST_MEMORY_CACHE_MB = 2047
# The kNN votes divide float32 similarities by T: a T below float32's smallest normal number may round
# to 0 (0 / 0 is NaN). Any T above it is computed stably (evaluation/knn.py `_vote`).
MIN_KNN_TEMPERATURE = float(torch.finfo(torch.float32).tiny)


def _require(ok: bool, key: str, value, right: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is invalid: it must be {right}")


def check_device(name: str) -> None:
    """MODEL.DEVICE must name a device this machine has."""
    try:
        device = torch.device(name) if name != "auto" else torch.device("cpu")
    except RuntimeError:
        raise ConfigError(f"MODEL.DEVICE = '{name}' is not a device name; use 'auto', 'cpu', 'cuda' or 'cuda:<index>'") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"MODEL.DEVICE = '{name}' but no CUDA GPU is available here; use MODEL.DEVICE 'auto' or 'cpu'")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"MODEL.DEVICE = '{name}' but only {count} GPUs are visible")


def check_knn(cfg) -> None:
    """TEST.KNN.*: every number of the kNN monitor, and a query split other than its memory split."""
    knn = cfg.TEST.KNN
    _require(knn.K > 0, "TEST.KNN.K", knn.K, "a positive number of neighbours")
    _require(
        MIN_KNN_TEMPERATURE <= knn.TEMPERATURE < math.inf,
        "TEST.KNN.TEMPERATURE",
        knn.TEMPERATURE,
        f"finite and >= {MIN_KNN_TEMPERATURE!r}, float32's smallest normal number (the neighbours "
        f"vote with weight exp(cos / T); e.g. 0.07)",
    )
    _require(
        knn.QUERY_CHUNK_SIZE > 0,
        "TEST.KNN.QUERY_CHUNK_SIZE",
        knn.QUERY_CHUNK_SIZE,
        "a positive number of queries scored at once (e.g. 1024)",
    )
    _require(
        knn.MEMORY_CHUNK_SIZE > 0,
        "TEST.KNN.MEMORY_CHUNK_SIZE",
        knn.MEMORY_CHUNK_SIZE,
        "a positive number of memory rows per similarity block (e.g. 16384)",
    )
    _require(knn.MEMORY_PER_CLASS >= 0, "TEST.KNN.MEMORY_PER_CLASS", knn.MEMORY_PER_CLASS, ">= 0 (0: every image of the memory split)")
    memory = knn.MEMORY_DATASET or (cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else "")
    if "KNN" in cfg.TEST.EVALUATORS and cfg.DATASETS.TEST and cfg.DATASETS.TEST[0] == memory:
        # each query would find itself (cos 1) among its neighbours: 100 % whatever the features
        raise ConfigError(
            f"DATASETS.TEST[0] = '{memory}' is also the kNN memory split (TEST.KNN.MEMORY_DATASET or "
            f"DATASETS.TRAIN[0]): every image would find itself and kNN would report about 100 %. "
            f"Query a held-out split (e.g. a '_val' / '_test' split) or set TEST.KNN.MEMORY_DATASET"
        )


def check_weights_scheme(path: str) -> None:
    """MODEL.WEIGHTS: a URL must have a scheme that a PathManager handler opens."""
    prefixes = sorted(PathManager._path_handlers)  # iopath keeps its handlers by prefix, e.g. "https://"
    if "://" in path and not path.startswith(tuple(prefixes)):
        raise ConfigError(
            f"MODEL.WEIGHTS = '{path}': no handler opens '{path.split('://')[0]}://' URLs; use a local file or one of {', '.join(prefixes)}"
        )


def check_config(cfg) -> None:
    """Refuse numbers no run can use (before any model, data or file is touched)."""
    solver = cfg.SOLVER
    _require(solver.IMS_PER_BATCH > 0, "SOLVER.IMS_PER_BATCH", solver.IMS_PER_BATCH, "a positive number of images")
    _require(solver.GRAD_ACCUM_STEPS >= 1, "SOLVER.GRAD_ACCUM_STEPS", solver.GRAD_ACCUM_STEPS, ">= 1")
    _require(
        solver.IMS_PER_BATCH % solver.GRAD_ACCUM_STEPS == 0,
        "SOLVER.GRAD_ACCUM_STEPS",
        solver.GRAD_ACCUM_STEPS,
        f"a divisor of SOLVER.IMS_PER_BATCH ({solver.IMS_PER_BATCH})",
    )
    _require(solver.BASE_LR > 0, "SOLVER.BASE_LR", solver.BASE_LR, "positive")
    _require(solver.CHECKPOINT_PERIOD > 0, "SOLVER.CHECKPOINT_PERIOD", solver.CHECKPOINT_PERIOD, "a positive number of iterations")
    _require(solver.MAX_TO_KEEP >= 0, "SOLVER.MAX_TO_KEEP", solver.MAX_TO_KEEP, ">= 0 (0 keeps all)")
    _require(cfg.LOG_PERIOD > 0, "LOG_PERIOD", cfg.LOG_PERIOD, "a positive number of iterations")
    _require(cfg.TEST.EVAL_PERIOD >= 0, "TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD, ">= 0 (0: only at the end)")
    _require(cfg.TEST.IMS_PER_BATCH > 0, "TEST.IMS_PER_BATCH", cfg.TEST.IMS_PER_BATCH, "positive")
    _require(
        0.0 <= cfg.MODEL.MOMENTUM.BASE <= 1.0,
        "MODEL.MOMENTUM.BASE",
        cfg.MODEL.MOMENTUM.BASE,
        "in [0, 1] (the EMA weight of the old key encoder, e.g. 0.999)",
    )
    _require(0.0 <= solver.MOMENTUM < 1.0, "SOLVER.MOMENTUM", solver.MOMENTUM, "in [0, 1) (e.g. 0.9)")
    _require(solver.WEIGHT_DECAY >= 0, "SOLVER.WEIGHT_DECAY", solver.WEIGHT_DECAY, ">= 0")
    _require(
        cfg.INPUT.NUM_VIEWS >= 2 or cfg.MODEL.META_ARCHITECTURE == "LinearClassifier",
        "INPUT.NUM_VIEWS",
        cfg.INPUT.NUM_VIEWS,
        ">= 2 (self-supervised methods compare views of one image)",
    )
    _require(cfg.INPUT.CROP_SIZE > 0, "INPUT.CROP_SIZE", cfg.INPUT.CROP_SIZE, "a positive size in pixels")
    _require(
        cfg.INPUT.TEST_RESIZE >= cfg.INPUT.CROP_SIZE,
        "INPUT.TEST_RESIZE",
        cfg.INPUT.TEST_RESIZE,
        f">= INPUT.CROP_SIZE ({cfg.INPUT.CROP_SIZE}); the evaluation center-crops the resized image",
    )
    low, high = cfg.INPUT.CROP_SCALE
    _require(0 < low <= high <= 1, "INPUT.CROP_SCALE", tuple(cfg.INPUT.CROP_SCALE), "(low, high) with 0 < low <= high <= 1")
    check_knn(cfg)
    probe = cfg.TEST.LINEAR_PROBE
    _require(
        len(probe.LRS) > 0 and all(lr > 0 for lr in probe.LRS),
        "TEST.LINEAR_PROBE.LRS",
        tuple(probe.LRS),
        "one or more positive learning rates to choose from",
    )
    _require(probe.STEPS > 0, "TEST.LINEAR_PROBE.STEPS", probe.STEPS, "a positive number of full-batch steps")
    _require(probe.WEIGHT_DECAY >= 0, "TEST.LINEAR_PROBE.WEIGHT_DECAY", probe.WEIGHT_DECAY, ">= 0")
    _require(
        0 < probe.HOLDOUT_FRACTION < 1,
        "TEST.LINEAR_PROBE.HOLDOUT_FRACTION",
        probe.HOLDOUT_FRACTION,
        "in (0, 1) (the part of the training split that chooses the lr)",
    )
    _require(probe.MAX_PER_CLASS >= 0, "TEST.LINEAR_PROBE.MAX_PER_CLASS", probe.MAX_PER_CLASS, ">= 0 (0: all)")
    crops = cfg.INPUT.MULTI_CROP
    _require(crops.NUM_LOCAL >= 0, "INPUT.MULTI_CROP.NUM_LOCAL", crops.NUM_LOCAL, ">= 0 (0: no local crops)")
    _require(crops.LOCAL_SIZE > 0, "INPUT.MULTI_CROP.LOCAL_SIZE", crops.LOCAL_SIZE, "a positive size in pixels")
    low, high = crops.LOCAL_SCALE
    _require(0 < low <= high <= 1, "INPUT.MULTI_CROP.LOCAL_SCALE", tuple(crops.LOCAL_SCALE), "(low, high) with 0 < low <= high <= 1")
    online_probe = cfg.TEST.ONLINE_PROBE
    _require(
        not online_probe.ENABLED or bool(cfg.DATASETS.TEST),
        "TEST.ONLINE_PROBE.ENABLED",
        online_probe.ENABLED,
        "False without a labelled DATASETS.TEST split (the probe's top-1 is measured on it)",
    )
    _require(online_probe.NUM_CLASSES >= 2, "TEST.ONLINE_PROBE.NUM_CLASSES", online_probe.NUM_CLASSES, ">= 2")
    _require(cfg.DATALOADER.NUM_WORKERS >= 0, "DATALOADER.NUM_WORKERS", cfg.DATALOADER.NUM_WORKERS, ">= 0")
    _require(
        0 <= cfg.HOST_MEMORY_CACHE_MB <= MAX_HOST_MEMORY_CACHE_MB,
        "HOST_MEMORY_CACHE_MB",
        cfg.HOST_MEMORY_CACHE_MB,
        f"in [0, {MAX_HOST_MEMORY_CACHE_MB}] MiB (0 keeps the allocator's defaults; glibc takes at most 2**31 - 1 bytes)",
    )
    check_weights_scheme(cfg.MODEL.WEIGHTS)
    check_device(cfg.MODEL.DEVICE)
