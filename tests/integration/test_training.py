"""End-to-end runs of the Shapes configs at toy size, resume, and the command line."""

import json
import os
import subprocess
import sys

import pytest
import torch

from ssl_lab.config import get_cfg
from ssl_lab.engine import DefaultTrainer, HookBase
from ssl_lab.utils.logger import setup_logger

from conftest import REPO_ROOT, assert_is_final_accuracy, tiny_overrides

SHAPES_CONFIGS = ["mocov1_r18", "mocov2_r18", "simclr_r18", "byol_r18"]


def _train(cfg, resume=False, extra_hooks=()):
    setup_logger(cfg.OUTPUT_DIR)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks(extra_hooks)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return trainer


def _metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHAPES_CONFIGS)
def test_shapes_config_trains_and_writes_outputs(tiny_cfg, name):
    cfg = tiny_cfg(f"configs/Shapes/{name}.yaml", "DATASETS.TEST", "('shapes_val',)")
    torch.manual_seed(0)
    initial_queue = _QueueSnapshot()
    trainer = _train(cfg, extra_hooks=[initial_queue])
    model = trainer.model
    init = DefaultTrainer.build_model(trainer.cfg).backbone.state_dict()
    assert any(not torch.equal(init[k], v) for k, v in model.backbone.state_dict().items() if v.is_floating_point())
    out = cfg.OUTPUT_DIR
    records = _metrics(out)
    losses = [r for r in records if "total_loss" in r]
    assert [r["iteration"] for r in losses] == [0, 1, 2, 3]
    assert_is_final_accuracy(records[-1]["knn/top1"], trainer, "knn/top1")
    for name_ in ("config.yaml", "log.txt", "model_final.pth", "last_checkpoint"):
        assert os.path.isfile(os.path.join(out, name_)), name_
    saved = get_cfg()
    saved.merge_from_file(os.path.join(out, "config.yaml"))
    assert saved.SOLVER.MAX_ITER == 4
    if hasattr(model, "queue"):
        # 4 iterations x 16 keys filled the 64 slots once: the pointer is back at 0 and no slot
        # still holds its random initial key.
        assert int(model.queue.ptr) == 0
        assert not (model.queue.queue == initial_queue.queue).all(dim=1).any()


class _QueueSnapshot(HookBase):
    """The queue (if any) as it is before the first step."""

    queue = None

    def before_train(self):
        if hasattr(self.trainer.model, "queue"):
            self.queue = self.trainer.model.queue.queue.clone()


class _Crash(HookBase):
    def after_step(self):
        if self.trainer.iter == 1:
            raise RuntimeError("simulated crash")


@pytest.mark.slow
def test_resume_continues_at_next_iteration_with_saved_queue(tiny_cfg):
    cfg = tiny_cfg("configs/Shapes/mocov2_r18.yaml", "DATASETS.TEST", "()")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(cfg, extra_hooks=[_Crash()])
    saved = torch.load(os.path.join(cfg.OUTPUT_DIR, "model_0000001.pth"), weights_only=False)
    with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")) as f:
        assert f.read().strip() == "model_0000001.pth"

    setup_logger(cfg.OUTPUT_DIR)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 2
    assert torch.equal(trainer.model.queue.queue, saved["model"]["queue.queue"])
    assert int(trainer.model.queue.ptr) == int(saved["model"]["queue.ptr"]) == 32
    assert trainer.scheduler.last_epoch == 2
    trainer.train()
    iterations = [r["iteration"] for r in _metrics(cfg.OUTPUT_DIR) if "total_loss" in r]
    assert iterations == [0, 1, 2, 3]


@pytest.mark.slow
def test_refuses_to_overwrite_a_run_without_resume(tiny_cfg):
    cfg = tiny_cfg("configs/Shapes/simclr_r18.yaml", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "2")
    _train(cfg)
    final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    stamp = os.stat(final).st_mtime_ns
    with pytest.raises(RuntimeError, match="--resume"):
        _train(cfg)
    assert os.stat(final).st_mtime_ns == stamp


def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    env.pop("SSL_LAB_DEBUG", None)
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "tools", "train_net.py"), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.slow
def test_two_process_gloo_run_completes(shapes_root, tmp_path):
    out = str(tmp_path / "ddp")
    result = _cli(
        "--config-file",
        os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"),
        "--num-gpus",
        "2",
        *tiny_overrides(shapes_root, out),
        "SOLVER.MAX_ITER",
        "3",
        "DATASETS.TEST",
        "()",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "log.txt")) as f:
        assert "World size: 2  rank: 0  device: cpu" in f.read()
    assert os.path.isfile(os.path.join(out, "log.txt.rank1"))
    assert [r["iteration"] for r in _metrics(out) if "total_loss" in r] == [0, 1, 2]
    state = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)["model"]
    assert int(state["queue.ptr"]) == (3 * 16) % 64  # both ranks' keys were enqueued


@pytest.mark.slow
@pytest.mark.parametrize(
    "args,message",
    [
        (["SOLVER.BASE_LRR", "0.1"], "Did you mean: SOLVER.BASE_LR"),
        (["SOLVER.IMS_PER_BATCH", "many"], "SOLVER.IMS_PER_BATCH"),
        (["MODEL.QUEUE.SIZE", "100"], "must be a multiple of the global batch"),
        (["DATASETS.TRAIN", "('imagenet_train',)"], "imagenet/train"),
    ],
)
def test_cli_bad_input_gives_one_clear_error(shapes_root, tmp_path, args, message):
    result = _cli(
        "--config-file",
        os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"),
        *tiny_overrides(shapes_root, str(tmp_path / "out")),
        *args,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_flag_after_overrides_is_explained():
    result = _cli("SOLVER.MAX_ITER", "3", "--resume")
    assert result.returncode == 2 and "--resume comes after the KEY VALUE overrides" in result.stderr


@pytest.mark.slow
def test_cli_missing_config_file(tmp_path):
    result = _cli("--config-file", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "nope.yaml' does not exist" in result.stderr
