"""Exact resume: RNG states per rank, hook states, and kill/resume of runs that draw from the global RNG.

The references are independent of the resume path: the draws made right after a save, the
number of steps of an uninterrupted run, and the weights of an uninterrupted run.
"""

import os
import random

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_lab.checkpoint import Checkpointer
from ssl_lab.engine import HOOK_REGISTRY, HookBase, setup_cfg
from ssl_lab.engine.launch import find_free_port, launch
from ssl_lab.utils.env import RNGState

from resume_testing import (
    _args,
    _cfg,
    _kill_and_resume,
    _losses,
    _reseed,
    _trainer,
    assert_kill_and_resume_is_bitwise,
    check_two_rank_resume,
)


def _draws():
    """One draw from each global generator the code uses."""
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)]


def test_rng_state_survives_a_checkpoint_file(tmp_path):
    _reseed(5)
    _draws()
    checkpointer = Checkpointer(nn.Linear(2, 2), str(tmp_path), rng=RNGState())
    checkpointer.save("model_0000000")
    expected = _draws()  # what an uninterrupted run draws next
    _reseed(6)
    checkpointer.load(str(tmp_path / "model_0000000.pth"))
    assert _draws() == expected


def _rng_worker(rank, port, save_dir, results):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    _reseed(100 + rank)  # as default_setup does: SEED + rank
    checkpointer = Checkpointer(nn.Linear(2, 2), save_dir, save_to_disk=rank == 0, rng=RNGState())
    checkpointer.save("model_0000000")  # every rank calls save; rank 0 writes
    expected = _draws()
    dist.barrier()
    _reseed(0)  # a resumed process starts from its seed, the same on both ranks here
    checkpointer.load(os.path.join(save_dir, "model_0000000.pth"))
    results[rank] = {"expected": expected, "after_load": _draws()}
    check_two_rank_resume(rank)  # the resumed data stream, on real ranks
    dist.destroy_process_group()


@pytest.mark.slow
def test_each_rank_gets_its_own_rng_state_and_sample_stream_back(tmp_path):
    results = mp.Manager().dict()
    mp.start_processes(_rng_worker, nprocs=2, args=(find_free_port(), str(tmp_path), results), start_method="spawn")
    assert results[0]["expected"] != results[1]["expected"]  # the ranks' streams differ, so rank 0's state won't do
    for rank in range(2):
        assert results[rank]["after_load"] == results[rank]["expected"], rank


@HOOK_REGISTRY.register()
class StepCounterForTest(HookBase):
    """A project hook with state (the number of optimizer steps it has seen), added by EXTRA_HOOKS."""

    def __init__(self, cfg):
        self.count = 0

    def after_step(self):
        self.count += 1

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


@pytest.mark.slow
def test_stateful_hook_keeps_its_state_across_kill_and_resume(shapes_root, tmp_path):
    cfg = _cfg("configs/Shapes/simclr_r18.yaml", str(tmp_path), shapes_root, "EXTRA_HOOKS", "('StepCounterForTest',)")
    trainer = _kill_and_resume(cfg)
    counter = next(h for h in trainer._hooks if isinstance(h, StepCounterForTest))
    assert counter.count == cfg.SOLVER.MAX_ITER  # as many steps as an uninterrupted run
    saved = torch.load(os.path.join(cfg.OUTPUT_DIR, "model_0000001.pth"), weights_only=True)
    assert saved["trainer"]["hooks"]["StepCounterForTest"] == {"count": 2}
    assert saved["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 2


KILL_RESUME_CASES = {
    # RandomNegatives draws the negatives' columns from the global torch RNG at every step.
    "simo_random_negatives": ("projects/SiMo/configs/shapes_r18.yaml", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "5"),
    # The views are made in the trainer under a generator seeded by the iteration.
    "batched_augmentation": ("configs/Shapes/mocov2_r18.yaml", "INPUT.BATCHED_AUGMENTATION", "True"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(KILL_RESUME_CASES))
def test_kill_and_resume_matches_uninterrupted_run_bitwise(shapes_root, tmp_path, case):
    config_file, *opts = KILL_RESUME_CASES[case]
    assert_kill_and_resume_is_bitwise(config_file, tmp_path, shapes_root, *opts)


def _two_rank_runs(args_reference, args_killed):
    """In each of 2 gloo processes: an uninterrupted run, then a killed and resumed one."""
    rank = dist.get_rank()
    cfg_reference, cfg_killed = setup_cfg(args_reference), setup_cfg(args_killed)
    _reseed(cfg_reference.SEED + rank)  # as default_setup seeds each rank
    _trainer(cfg_reference).train()
    _reseed(cfg_killed.SEED + rank)
    _kill_and_resume(cfg_killed)


@pytest.mark.slow
def test_two_rank_kill_and_resume_matches_uninterrupted_run_bitwise(shapes_root, tmp_path):
    # SiMo: RandomNegatives draws from each rank's global RNG, whose state differs per rank.
    config_file, *opts = KILL_RESUME_CASES["simo_random_negatives"]
    args = [_args(config_file, str(tmp_path / name), shapes_root, *opts, "SEED", "3") for name in ("reference", "killed")]
    launch(_two_rank_runs, 2, args=tuple(args))
    cfgs = [setup_cfg(a) for a in args]
    assert _losses(cfgs[1].OUTPUT_DIR) == _losses(cfgs[0].OUTPUT_DIR)
    expected, resumed = (torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), weights_only=True)["model"] for cfg in cfgs)
    for key, value in resumed.items():
        assert torch.equal(value, expected[key]), key
