"""Shared fixtures: tiny CPU-sized configs on a small Shapes dataset generated once per session."""

import os

import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# At most 2 threads a test; under pytest-xdist the cores are shared among its workers.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads() // _WORKERS)))


def tiny_model_and_data(datasets_root: str):
    """Config overrides for tiny Shapes splits, 32 px crops, narrow heads and a batch of 16."""
    # fmt: off
    return [
        "DATASETS.ROOT", datasets_root,
        "DATASETS.SHAPES.NUM_TRAIN", "64",
        "DATASETS.SHAPES.NUM_VAL", "32",
        "DATASETS.SHAPES.IMAGE_SIZE", "32",
        "INPUT.CROP_SIZE", "32",
        "INPUT.TEST_RESIZE", "32",
        "MODEL.PROJECTOR.HIDDEN_DIM", "64",
        "MODEL.PROJECTOR.OUT_DIM", "32",
        "MODEL.PREDICTOR.HIDDEN_DIM", "64",
        "MODEL.PREDICTOR.OUT_DIM", "32",
        "MODEL.QUEUE.SIZE", "64",
        "SOLVER.IMS_PER_BATCH", "16",
    ]
    # fmt: on


def tiny_overrides(datasets_root: str, output_dir: str):
    """Config overrides that make any Shapes config run in seconds on a CPU."""
    # fmt: off
    return [
        "OUTPUT_DIR", output_dir,
        *tiny_model_and_data(datasets_root),
        "SOLVER.MAX_ITER", "4",
        "SOLVER.CHECKPOINT_PERIOD", "2",
        "DATALOADER.NUM_WORKERS", "0",
        "TEST.EVAL_PERIOD", "0",
        "TEST.EVAL_AT_START", "False",
        "TEST.IMS_PER_BATCH", "32",
        "LOG_PERIOD", "1",
    ]
    # fmt: on


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A datasets root holding the tiny Shapes splits (generated once)."""
    from ssl_lab.data.datasets.shapes import ensure_shapes

    root = str(tmp_path_factory.mktemp("datasets"))
    ensure_shapes(os.path.join(root, "shapes"), "train", 64, 32, 0)
    ensure_shapes(os.path.join(root, "shapes"), "val", 32, 32, 0)
    return root


@pytest.fixture
def tiny_cfg(shapes_root, tmp_path):
    """Build a frozen-free config from a repo config file plus tiny overrides (and extra KEY VALUEs)."""
    from ssl_lab.config import get_cfg

    def make(config_file: str, *extra):
        cfg = get_cfg()
        cfg.merge_from_file(os.path.join(REPO_ROOT, config_file))
        cfg.merge_from_list(tiny_overrides(shapes_root, str(tmp_path / "out")) + list(extra))
        return cfg

    return make


def assert_is_final_accuracy(logged: float, trainer, metric: str, num_images: int = 32):
    """`logged` is `metric` of the trained model on the `num_images` test images: a multiple of
    100 / num_images equal to a fresh evaluation of the final weights."""
    from ssl_lab.engine import DefaultTrainer

    correct = logged * num_images / 100
    assert correct == pytest.approx(round(correct)), (metric, logged)
    assert logged == pytest.approx(DefaultTrainer.test(trainer.cfg, trainer.model)[metric]), metric


def assert_linear_eval_keeps_backbone(cfg, pretrained: dict):
    """Train the linear-eval `cfg` (its MODEL.WEIGHTS a pretraining checkpoint whose backbone state
    is `pretrained`): the backbone loads, stays in eval mode and leaves weights and BN running
    statistics untouched; only the classifier learns; the logged top-1 is the final model's."""
    from ssl_lab.engine import DefaultTrainer

    trainer = DefaultTrainer(cfg)
    fc_before = trainer.model.fc.weight.clone()
    trainer.resume_or_load(resume=False)
    trainer.train()
    backbone = trainer.model.backbone
    assert not backbone.training
    assert set(backbone.state_dict()) == set(pretrained)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, pretrained[key]), key
    assert not torch.equal(fc_before, trainer.model.fc.weight)
    latest = trainer.storage.latest()
    assert "loss_cls" in latest
    assert_is_final_accuracy(latest["top1"][0], trainer, "top1")


def lr_trajectory(cfg, steps: int) -> list:
    """The lr of param group 0 before each of `steps` steps of `cfg`'s optimizer and scheduler."""
    from ssl_lab.solver import build_lr_scheduler, build_optimizer

    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2))
    scheduler = build_lr_scheduler(cfg, optimizer)
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values
