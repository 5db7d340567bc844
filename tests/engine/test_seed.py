"""SEED -1: every run draws a fresh seed for weights, data order and augmentation, and logs it."""

from types import SimpleNamespace

import torch

from ssl_lab.data import build_train_loader
from ssl_lab.engine import default_setup, setup_cfg
from ssl_lab.utils.logger import start_log_files

from conftest import REPO_ROOT, tiny_overrides


def _first_batch(tmp_path, name, *opts):
    args = SimpleNamespace(
        config_file=f"{REPO_ROOT}/configs/Shapes/mocov2_r18.yaml",
        opts=[*tiny_overrides(str(tmp_path / "data"), str(tmp_path / name)), "SEED", "-1", *opts],
    )
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    start_log_files()  # a run writes log.txt once it is accepted (DefaultTrainer.resume_or_load)
    images, _ = next(iter(build_train_loader(cfg)))  # the whole first batch: a single image is the
    return cfg, images  # same for two seeds whenever their shuffles start at the same index (1 in 64)


def test_seed_minus_one_draws_a_fresh_logged_seed_for_data_and_augmentation(tmp_path):
    cfg_a, batch_a = _first_batch(tmp_path, "a")
    cfg_b, batch_b = _first_batch(tmp_path, "b")
    assert cfg_a.SEED >= 0 and cfg_b.SEED >= 0 and cfg_a.SEED != cfg_b.SEED
    assert not torch.equal(batch_a, batch_b)  # different sample order / augmentation
    assert f"SEED {cfg_a.SEED}" in (tmp_path / "a" / "log.txt").read_text()
    # The logged seed repeats the run's stream exactly.
    _, repeat = _first_batch(tmp_path, "c", "SEED", str(cfg_a.SEED))
    assert torch.equal(repeat, batch_a)
