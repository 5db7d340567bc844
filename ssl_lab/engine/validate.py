"""`validate`: every check a run makes before it trains, data aside, in one place.

tools/train_net.py runs it before any process starts, `--dry-run` runs it and prints what it
built, the benchmarks run it before they time anything: whatever a run refuses, these refuse too,
with the same message. The model is built on the meta device (no memory, no initialization);
the schedule uses the nominal size of the training set, so no image is read.
"""

import logging
import os

import torch

from ssl_lab.config import ConfigError
from ssl_lab.config.checks import check_config
from ssl_lab.data import build_train_dataset
from ssl_lab.data.batched_augment import build_uint8_transform
from ssl_lab.data.build import per_rank_batch_size
from ssl_lab.data.transforms import build_train_transform
from ssl_lab.model_zoo import get_entry
from ssl_lab.solver import check_lr_steps, resolve_schedule
from ssl_lab.utils.download import SUPPORTED_SCHEMES

from .run_directory import RunDirectory
from .trainer import DefaultTrainer, Run

__all__ = ["NOMINAL_TRAIN_SIZES", "check_weights", "nominal_train_size", "validate"]

# Training-set sizes of the datasets the configs name, so that a schedule resolves without data.
NOMINAL_TRAIN_SIZES = {
    "imagenet_train": 1281167,
    "cifar10_train": 50000,
    "cifar100_train": 50000,
    "stl10_unlabeled": 100000,
    "stl10_train": 5000,
}


def nominal_train_size(cfg) -> int:
    """Images in DATASETS.TRAIN: the nominal size of a known dataset, else counted on disk."""
    name = cfg.DATASETS.TRAIN[0]
    if name in NOMINAL_TRAIN_SIZES:
        return NOMINAL_TRAIN_SIZES[name]
    if name == "shapes_train":
        return cfg.DATASETS.SHAPES.NUM_TRAIN
    return len(build_train_dataset(cfg))


def check_weights(path: str, eval_only: bool = False) -> None:
    """MODEL.WEIGHTS names something that can be opened: a local file, an ssl_lab://<name> of the
    catalog, or a URL of a scheme the downloader speaks. Its content is checked when it is loaded."""
    if not path:
        if eval_only:
            raise ConfigError(
                "--eval-only needs MODEL.WEIGHTS (a checkpoint file, URL or ssl_lab://<name>); "
                "without it a randomly initialized model would be evaluated"
            )
        return
    scheme = path.split("://", 1)[0] if "://" in path else ""
    if scheme == "ssl_lab":
        get_entry(path[len("ssl_lab://") :])
    elif scheme and scheme not in SUPPORTED_SCHEMES:
        raise ConfigError(
            f"MODEL.WEIGHTS = '{path}': no handler opens '{scheme}://'; use a local file, "
            f"ssl_lab://<name> or one of {', '.join(s + '://' for s in SUPPORTED_SCHEMES)}"
        )
    elif not scheme and not os.path.isfile(path):
        raise ConfigError(f"MODEL.WEIGHTS = '{path}': no such file; give a checkpoint file, URL or ssl_lab://<name>")


def _on_meta_device(cfg):
    meta = cfg.clone()
    meta.defrost()
    meta.MODEL.DEVICE = "meta"
    meta.SOLVER.COMPILE = False
    meta.freeze()
    return meta


def validate(
    cfg, world_size: int, resume: bool = False, allow_config_change: bool = False, eval_only: bool = False, quiet: bool = True
) -> Run:
    """Refuse, before anything is written or any process starts, a run of `cfg` on `world_size`
    processes that the run itself would refuse before training: the config's numbers and device, a
    global batch that does not split over the processes, MODEL.WEIGHTS that cannot be opened, an
    augmentation recipe or component that does not exist, an LR step outside the run (see
    check_lr_steps), a model `cfg` cannot build (e.g. K above the negatives a batch offers), and an
    OUTPUT_DIR the run may not use (see RunDirectory.check).

    Returns the run assembled on the meta device, its schedule resolved with the nominal training-set
    size; with `quiet` the build's log records are dropped (the run's own build logs them, once; a dry
    run, which has no build of its own, keeps them).
    """
    check_config(cfg)
    per_rank_batch_size(cfg, world_size)
    check_weights(cfg.MODEL.WEIGHTS, eval_only)
    (build_uint8_transform if cfg.INPUT.BATCHED_AUGMENTATION else build_train_transform)(cfg)
    logging.disable(logging.WARNING if quiet else logging.NOTSET)
    try:
        resolved = resolve_schedule(cfg, nominal_train_size(cfg))
        if not eval_only:  # an evaluation runs no schedule
            check_lr_steps(resolved)
        with torch.device("meta"):
            run = DefaultTrainer.assemble(_on_meta_device(resolved))
    finally:
        logging.disable(logging.NOTSET)
    run_dir = RunDirectory(cfg.OUTPUT_DIR)
    if eval_only:
        run_dir.check_writable()  # evaluating a finished run's weights is fine
    else:
        run_dir.check(resolved, resume, allow_config_change)
    return Run(resolved, run.model, run.optimizer, run.scheduler, run.batch_augmentation)
