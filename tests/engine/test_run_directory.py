"""The run directory: one "holds a checkpoint" rule, a SEED -1 resume that continues the same run,
a resume that refuses a config defining another run, one live run per folder.

References are independent of the code under test: an uninterrupted run with the seed written
explicitly, the folder's bytes before the start, and the order of system calls a crash-safe write needs.
"""

import json
import os
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ssl_lab.checkpoint import Checkpointer
from ssl_lab.config import get_cfg
from ssl_lab.engine import DefaultTrainer, HookBase, default_setup, setup_cfg
from ssl_lab.engine.run_directory import OutputDirInUseError, ResumeConfigError, RunDirectory, changed_keys

from conftest import REPO_ROOT, tiny_overrides


def test_a_model_file_without_last_checkpoint_is_resumed_not_restarted(tmp_path):
    # A kill between writing model_0000001.pth and last_checkpoint.
    Checkpointer(nn.Linear(2, 2), str(tmp_path)).save("model_0000001", iteration=1)
    os.remove(tmp_path / "last_checkpoint")
    assert RunDirectory(str(tmp_path)).has_checkpoint()
    fresh = Checkpointer(nn.Linear(2, 2), str(tmp_path))
    assert fresh.has_checkpoint()
    assert fresh.resume_or_load("", resume=True)["iteration"] == 1


def _resumable_args(shapes_root, out, *opts, resume=False):
    return SimpleNamespace(
        config_file=os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"),
        resume=resume,
        opts=[*tiny_overrides(shapes_root, out), "DATASETS.TEST", "()", *opts],
    )


class _Crash(HookBase):
    """Kills the run right after the checkpoint of iteration 1 (registered after the checkpointers)."""

    def after_step(self):
        if self.trainer.iter == 1:
            raise RuntimeError("simulated kill")


def _run(args, *extra_hooks):
    """tools/train_net.py's `main` for one process, with `extra_hooks` appended."""
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks(extra_hooks)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return trainer


def _losses(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return {r["iteration"]: r["total_loss"] for r in map(json.loads, f) if "total_loss" in r}


@pytest.mark.slow
def test_seed_minus_one_kill_and_resume_matches_the_uninterrupted_run_bitwise(shapes_root, tmp_path):
    killed = str(tmp_path / "killed")
    with pytest.raises(RuntimeError, match="simulated kill"):
        _run(_resumable_args(shapes_root, killed, "SEED", "-1"), _Crash())
    with open(os.path.join(killed, "config.yaml")) as f:
        drawn = int(next(line.split()[1] for line in f if line.startswith("SEED:")))
    reference = _run(_resumable_args(shapes_root, str(tmp_path / "reference"), "SEED", str(drawn)))
    torch.manual_seed(12345)  # a new process: its generators are not where the killed one left them
    resumed = _run(_resumable_args(shapes_root, killed, "SEED", "-1", resume=True))
    assert resumed.start_iter == 2 and resumed.cfg.SEED == drawn
    assert _losses(killed) == _losses(reference.cfg.OUTPUT_DIR)
    expected = reference.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def _saved_run_config():
    cfg = get_cfg()
    cfg.merge_from_list(["SEED", "7", "SOLVER.MAX_ITER", "100", "MODEL.BACKBONE.DEPTH", "18"])
    return cfg


def test_changed_keys_names_what_defines_the_run_and_skips_what_does_not():
    saved = json.loads(json.dumps(_saved_run_config()))  # as config.yaml stores it: plain mappings and lists
    cfg = _saved_run_config()
    cfg.merge_from_list(
        [
            "SEED",
            "-1",
            "OUTPUT_DIR",
            "elsewhere",
            "SOLVER.CHECKPOINT_PERIOD",
            "7",
            "MODEL.DEVICE",
            "cpu",
            "DATALOADER.NUM_WORKERS",
            "0",
            "TEST.KNN.K",
            "20",
        ]
    )
    assert changed_keys(saved, cfg) == []  # SEED -1 takes the saved seed; the rest does not define the run
    cfg.merge_from_list(
        [
            "SEED",
            "8",
            "MODEL.BACKBONE.DEPTH",
            "34",
            "MODEL.META_ARCHITECTURE",
            "SimCLR",
            "SOLVER.IMS_PER_BATCH",
            "512",
            "SOLVER.MAX_ITER",
            "200",
            "MODEL.PROJECTOR.OUT_DIM",
            "256",
            "INPUT.CROP_SCALE",
            "(0.08, 1.0)",
        ]
    )
    assert changed_keys(saved, cfg) == [
        ("INPUT.CROP_SCALE", [0.2, 1.0], [0.08, 1.0]),
        ("MODEL.BACKBONE.DEPTH", 18, 34),
        ("MODEL.META_ARCHITECTURE", "MoCo", "SimCLR"),
        ("MODEL.PROJECTOR.OUT_DIM", 128, 256),
        ("SEED", 7, 8),
        ("SOLVER.IMS_PER_BATCH", 256, 512),
        ("SOLVER.MAX_ITER", 100, 200),
    ]


def test_changed_keys_compares_a_renamed_key_under_its_new_name():
    saved = json.loads(json.dumps(_saved_run_config()))
    saved["INPUT"]["GPU_AUGMENTATION"] = saved["INPUT"].pop("BATCHED_AUGMENTATION")  # a run saved before the rename
    cfg = _saved_run_config()
    assert changed_keys(saved, cfg) == []
    cfg.merge_from_list(["INPUT.BATCHED_AUGMENTATION", "True"])
    assert changed_keys(saved, cfg) == [("INPUT.BATCHED_AUGMENTATION", False, True)]


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _saved_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text(_saved_run_config().dump())
    torch.save({"model": {}, "iteration": 9}, out / "model_0000009.pth")
    (out / "metrics.json").write_text('{"iteration": 9, "total_loss": 1.0}\n')
    return out


def test_a_resume_that_changes_the_run_is_refused_naming_each_key_and_changes_nothing(tmp_path):
    out = _saved_folder(tmp_path)
    before = _snapshot(out)
    cfg = _saved_run_config()
    cfg.merge_from_list(["OUTPUT_DIR", str(out), "MODEL.BACKBONE.DEPTH", "50", "SOLVER.IMS_PER_BATCH", "128"])
    with pytest.raises(ResumeConfigError) as err:
        RunDirectory(str(out)).check(cfg, resume=True)
    lines = str(err.value).splitlines()
    assert "  MODEL.BACKBONE.DEPTH: 18 -> 50" in lines and "  SOLVER.IMS_PER_BATCH: 256 -> 128" in lines
    assert len(lines) <= 15 and "--allow-config-change" in lines[-1]
    RunDirectory(str(out)).check(cfg, resume=True, allow_config_change=True)  # the explicit flag allows it
    assert _snapshot(out) == before


def test_seed_minus_one_resume_takes_the_saved_seed(tmp_path):
    out = _saved_folder(tmp_path)
    cfg = _saved_run_config()
    cfg.SEED = -1
    assert RunDirectory(str(out)).resumed_seed(cfg, resume=True) == 7
    assert RunDirectory(str(out)).resumed_seed(cfg, resume=False) == -1  # a new run draws its own
    os.remove(out / "config.yaml")
    with pytest.raises(ResumeConfigError, match="set SEED to that run's seed"):
        RunDirectory(str(out)).resumed_seed(cfg, resume=True)


def test_a_second_live_run_into_the_same_folder_is_refused(tmp_path):
    out = _saved_folder(tmp_path)
    cfg = _saved_run_config()
    live = RunDirectory(str(out))
    live.accept(cfg)
    with pytest.raises(OutputDirInUseError, match=f"in use by a live run \\(pid {os.getpid()}\\)"):
        RunDirectory(str(out)).check(cfg, resume=True)
    live.release()
    RunDirectory(str(out)).check(cfg, resume=True)  # the run ended: the folder can be resumed
