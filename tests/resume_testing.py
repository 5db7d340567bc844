"""Helpers the resume tests share (tests in several folders kill a toy run and resume it): toy
configs and trainers, the kill after iteration 1, the bitwise comparison with an uninterrupted run,
and the two-rank data-stream check."""

import json
import os
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_lab.config import get_cfg
from ssl_lab.data import build_train_loader
from ssl_lab.engine import DefaultTrainer, HookBase, setup_cfg
from ssl_lab.utils.logger import setup_logger

from conftest import REPO_ROOT, tiny_overrides


def _reseed(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _args(config_file, output_dir, shapes_root, *opts):
    """Command-line arguments of a toy-size run of `config_file`."""
    return SimpleNamespace(
        config_file=os.path.join(REPO_ROOT, config_file), opts=[*tiny_overrides(shapes_root, output_dir), "DATASETS.TEST", "()", *opts]
    )


def _cfg(*args):
    """The config as tools/train_net.py loads it (importing the projects of IMPORTS)."""
    return setup_cfg(_args(*args))


class _Crash(HookBase):
    """Kills the run right after the checkpoint of iteration 1 (registered after PeriodicCheckpointer)."""

    def after_step(self):
        if self.trainer.iter == 1:
            raise RuntimeError("simulated kill")


def _trainer(cfg, *extra_hooks, resume=False):
    setup_logger(cfg.OUTPUT_DIR)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks(extra_hooks)
    trainer.resume_or_load(resume=resume)
    return trainer


def _losses(output_dir):
    """{iteration: total_loss}; the resumed run's records replace the killed run's."""
    with open(os.path.join(output_dir, "metrics.json")) as f:
        records = [json.loads(line) for line in f]
    return {r["iteration"]: r["total_loss"] for r in records if "total_loss" in r}


def _kill_and_resume(cfg):
    """Train until the kill after iteration 1, then resume in a process whose RNG moved on."""
    with pytest.raises(RuntimeError, match="simulated kill"):
        _trainer(cfg, _Crash()).train()
    _reseed(12345)  # a new process: its generators are not where the killed one left them
    trainer = _trainer(cfg, resume=True)
    assert trainer.start_iter == 2
    trainer.train()
    return trainer


def assert_kill_and_resume_is_bitwise(config_file, tmp_path, shapes_root, *opts):
    """A toy run of `config_file` uninterrupted, and killed after iteration 1 then resumed: the same losses
    and final weights, bit for bit. Returns the uninterrupted run's trainer."""
    _reseed(0)
    reference = _trainer(_cfg(config_file, str(tmp_path / "reference"), shapes_root, *opts))
    reference.train()
    _reseed(0)
    resumed = _kill_and_resume(_cfg(config_file, str(tmp_path / "killed"), shapes_root, *opts))
    assert _losses(resumed.cfg.OUTPUT_DIR) == _losses(reference.cfg.OUTPUT_DIR)
    expected = reference.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    return reference


class _IndexDataset(torch.utils.data.Dataset):
    """Sample i is one 'view' holding i, labelled i."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return [torch.tensor(index)], index


def _global_stream(size, seed, length):
    """The documented stream: epoch e is torch.randperm(size) under seed + e, epochs back to back."""
    epochs = (length + size - 1) // size
    return torch.cat([torch.randperm(size, generator=torch.Generator().manual_seed(seed + e)) for e in range(epochs)])[:length].tolist()


def _loader_ids(start_iter, iterations):
    """Sample ids of this rank's batches for iterations start_iter .. start_iter + iterations - 1."""
    cfg = get_cfg()
    cfg.merge_from_list(["SOLVER.IMS_PER_BATCH", "8", "SEED", "3", "DATALOADER.NUM_WORKERS", "0"])
    loader = iter(build_train_loader(cfg, _IndexDataset(), start_iter))
    return [next(loader)[1].tolist() for _ in range(iterations)]


def check_two_rank_resume(rank):
    """Global batch i is stream[8 i : 8 i + 8]; rank r holds its positions r, r + 2, ... (4 per rank).
    A run resumed at iteration 3 (past an epoch boundary of 10 samples) continues the same stream."""
    stream = _global_stream(10, seed=3, length=8 * 6)
    expected = [stream[8 * i + rank : 8 * i + 8 : 2] for i in range(6)]
    assert _loader_ids(0, 6) == expected
    assert _loader_ids(3, 3) == expected[3:]
