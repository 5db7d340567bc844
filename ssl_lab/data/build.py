"""Data loaders for pretraining (multi-view, infinite) and evaluation (labelled, one pass)."""

import random
import signal

import torch
from torch.utils.data import BatchSampler, ConcatDataset, DataLoader, Dataset, Subset

from ssl_lab.config import ConfigError
from ssl_lab.utils import comm

from .batched_augment import build_uint8_transform
from .datasets import build_dataset
from .decode import build_decoding, collate_encoded
from .samplers import InferenceSampler, TrainingSampler
from .transforms import build_test_transform, build_train_transform


class SeededAugmentedDataset(Dataset):
    """Applies the random augmentation of sample (index, position) under a generator seeded by
    (seed, position): the views depend only on where the sample is in the training stream,
    not on workers or on where a run was resumed."""

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index_and_position):
        index, position = index_and_position
        seed = self.seed * 1_000_003 + position
        python_state = random.getstate()  # RandomChoice and friends draw from Python's random
        try:
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only: torch.manual_seed also seeds every accelerator (~0.1 ms)
                torch.default_generator.manual_seed(seed)
                random.seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(python_state)


def build_train_dataset(cfg):
    """Concatenation of DATASETS.TRAIN with the multi-view training transform, or with the
    uint8 loading transform when INPUT.BATCHED_AUGMENTATION makes the views on the device, behind the
    decoding of INPUT.REDUCED_DECODE / INPUT.GPU_DECODE."""
    transform = build_uint8_transform(cfg) if cfg.INPUT.BATCHED_AUGMENTATION else build_train_transform(cfg)
    transform = build_decoding(cfg, transform)
    datasets = [build_dataset(cfg, name, transform) for name in cfg.DATASETS.TRAIN]
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def per_rank_batch_size(cfg, world_size: int = 0) -> int:
    """Images one process consumes per iteration (over all its gradient-accumulation micro-batches),
    in a job of `world_size` processes (0: the current one)."""
    world_size = world_size or comm.get_world_size()
    accum = cfg.SOLVER.GRAD_ACCUM_STEPS
    if accum < 1 or cfg.SOLVER.IMS_PER_BATCH % (world_size * accum) != 0:
        raise ConfigError(
            f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) must be divisible by the number of "
            f"processes ({world_size}) times SOLVER.GRAD_ACCUM_STEPS ({accum})"
        )
    return cfg.SOLVER.IMS_PER_BATCH // world_size


def ignore_stop_signals(worker_id: int) -> None:
    """A loader worker's init: ignore SIGTERM / SIGINT. A scheduler's preemption (SLURM) or Ctrl-C
    signals every process of the job; a worker that died of it would fail the main process's next
    batch before its signal hook saves a checkpoint. Workers still exit when the loader shuts down
    or their parent dies."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_train_loader(cfg, dataset=None, start_iter: int = 0) -> DataLoader:
    """Infinite loader of ([V x (N, 3, H, W)], labels (N,)) micro-batches for this rank
    (uint8 images (N, 3, H, W) instead of the views with INPUT.BATCHED_AUGMENTATION; an EncodedBatch,
    whose ``.to(device)`` decodes it to them, with INPUT.GPU_DECODE).

    `start_iter` resumes the sample stream exactly where iteration `start_iter` begins.
    """
    dataset = dataset if dataset is not None else build_train_dataset(cfg)
    batch_size = per_rank_batch_size(cfg)
    seed = max(cfg.SEED, 0)
    sampler = TrainingSampler(len(dataset), shuffle=True, seed=seed, start=start_iter * batch_size, with_positions=True)
    return DataLoader(
        SeededAugmentedDataset(dataset, seed),
        batch_sampler=BatchSampler(sampler, batch_size // cfg.SOLVER.GRAD_ACCUM_STEPS, drop_last=True),
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        pin_memory=cfg.DATALOADER.PIN_MEMORY and torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
        persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0,
        worker_init_fn=ignore_stop_signals,
        collate_fn=collate_encoded if cfg.INPUT.GPU_DECODE else None,
    )


def first_per_class(labels, max_per_class: int) -> list:
    """Indices of the first `max_per_class` items of each label, in dataset order."""
    seen, keep = {}, []
    for index, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= max_per_class:
            keep.append(index)
    return keep


def build_test_loader(cfg, dataset_name: str, max_per_class: int = 0) -> DataLoader:
    """One pass over this rank's share of a labelled split with the evaluation transform
    (with max_per_class > 0, only the first that many images of each class)."""
    dataset = build_dataset(cfg, dataset_name, build_test_transform(cfg))
    if max_per_class > 0:
        dataset = Subset(dataset, first_per_class(dataset.labels, max_per_class))
    return DataLoader(
        dataset,
        batch_size=max(cfg.TEST.IMS_PER_BATCH // comm.get_world_size(), 1),
        sampler=InferenceSampler(len(dataset)),
        generator=torch.Generator(),  # evaluation must not consume the training RNG
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        worker_init_fn=ignore_stop_signals,
        pin_memory=cfg.DATALOADER.PIN_MEMORY and torch.cuda.is_available(),
    )
