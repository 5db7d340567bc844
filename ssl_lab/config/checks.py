"""Checks of the config's numbers and device, run before anything is built or written.

Each failure is a ConfigError naming the key, the value, and what would be right.
Checks that need the data (classes, kNN K against the memory split) or the method
(negatives against the batch) run where those are built.
"""
import torch

from .config import ConfigError

__all__ = ["check_config", "check_device"]


def _require(ok: bool, key: str, value, right: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r} is invalid: it must be {right}")


def check_device(name: str) -> None:
    """MODEL.DEVICE must name a device this machine has."""
    try:
        device = torch.device(name) if name != "auto" else torch.device("cpu")
    except RuntimeError:
        raise ConfigError(f"MODEL.DEVICE = '{name}' is not a device name; use 'auto', 'cpu', 'cuda' or "
                          f"'cuda:<index>'") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"MODEL.DEVICE = '{name}' but no CUDA GPU is available here; use MODEL.DEVICE "
                              f"'auto' or 'cpu'")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"MODEL.DEVICE = '{name}' but only {count} GPUs are visible")


def check_config(cfg) -> None:
    """Refuse numbers no run can use (before any model, data or file is touched)."""
    solver = cfg.SOLVER
    _require(solver.IMS_PER_BATCH > 0, "SOLVER.IMS_PER_BATCH", solver.IMS_PER_BATCH, "a positive number of images")
    _require(solver.GRAD_ACCUM_STEPS >= 1, "SOLVER.GRAD_ACCUM_STEPS", solver.GRAD_ACCUM_STEPS, ">= 1")
    _require(solver.IMS_PER_BATCH % solver.GRAD_ACCUM_STEPS == 0, "SOLVER.GRAD_ACCUM_STEPS", solver.GRAD_ACCUM_STEPS,
             f"a divisor of SOLVER.IMS_PER_BATCH ({solver.IMS_PER_BATCH})")
    _require(solver.BASE_LR > 0, "SOLVER.BASE_LR", solver.BASE_LR, "positive")
    _require(solver.CHECKPOINT_PERIOD > 0, "SOLVER.CHECKPOINT_PERIOD", solver.CHECKPOINT_PERIOD,
             "a positive number of iterations")
    _require(solver.MAX_TO_KEEP >= 0, "SOLVER.MAX_TO_KEEP", solver.MAX_TO_KEEP, ">= 0 (0 keeps all)")
    _require(cfg.LOG_PERIOD > 0, "LOG_PERIOD", cfg.LOG_PERIOD, "a positive number of iterations")
    _require(cfg.TEST.EVAL_PERIOD >= 0, "TEST.EVAL_PERIOD", cfg.TEST.EVAL_PERIOD, ">= 0 (0: only at the end)")
    _require(cfg.TEST.IMS_PER_BATCH > 0, "TEST.IMS_PER_BATCH", cfg.TEST.IMS_PER_BATCH, "positive")
    _require(0.0 <= cfg.MODEL.MOMENTUM.BASE <= 1.0, "MODEL.MOMENTUM.BASE", cfg.MODEL.MOMENTUM.BASE,
             "in [0, 1] (the EMA weight of the old key encoder, e.g. 0.999)")
    _require(0.0 <= solver.MOMENTUM < 1.0, "SOLVER.MOMENTUM", solver.MOMENTUM, "in [0, 1) (e.g. 0.9)")
    _require(solver.WEIGHT_DECAY >= 0, "SOLVER.WEIGHT_DECAY", solver.WEIGHT_DECAY, ">= 0")
    _require(cfg.INPUT.NUM_VIEWS >= 2 or cfg.MODEL.META_ARCHITECTURE == "LinearClassifier", "INPUT.NUM_VIEWS",
             cfg.INPUT.NUM_VIEWS, ">= 2 (self-supervised methods compare views of one image)")
    _require(cfg.INPUT.CROP_SIZE > 0, "INPUT.CROP_SIZE", cfg.INPUT.CROP_SIZE, "a positive size in pixels")
    _require(cfg.INPUT.TEST_RESIZE >= cfg.INPUT.CROP_SIZE, "INPUT.TEST_RESIZE", cfg.INPUT.TEST_RESIZE,
             f">= INPUT.CROP_SIZE ({cfg.INPUT.CROP_SIZE}); the evaluation center-crops the resized image")
    low, high = cfg.INPUT.CROP_SCALE
    _require(0 < low <= high <= 1, "INPUT.CROP_SCALE", tuple(cfg.INPUT.CROP_SCALE),
             "(low, high) with 0 < low <= high <= 1")
    knn = cfg.TEST.KNN
    _require(knn.K > 0, "TEST.KNN.K", knn.K, "a positive number of neighbours")
    _require(knn.TEMPERATURE > 0, "TEST.KNN.TEMPERATURE", knn.TEMPERATURE, "positive (e.g. 0.07)")
    _require(knn.QUERY_CHUNK_SIZE > 0, "TEST.KNN.QUERY_CHUNK_SIZE", knn.QUERY_CHUNK_SIZE, "a positive number of rows")
    _require(knn.MEMORY_CHUNK_SIZE > 0, "TEST.KNN.MEMORY_CHUNK_SIZE", knn.MEMORY_CHUNK_SIZE,
             "a positive number of rows")
    _require(knn.MEMORY_PER_CLASS >= 0, "TEST.KNN.MEMORY_PER_CLASS", knn.MEMORY_PER_CLASS, ">= 0 (0 keeps all)")
    _require(cfg.DATALOADER.NUM_WORKERS >= 0, "DATALOADER.NUM_WORKERS", cfg.DATALOADER.NUM_WORKERS, ">= 0")
    check_device(cfg.MODEL.DEVICE)
