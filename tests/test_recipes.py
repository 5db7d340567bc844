"""Shipped configs against the official recipes, and every config built at its real size.

The recipe tables (configs/recipes.yaml, projects/*/recipes.yaml) hold the official values, each
with its source file and commit; `resolved` holds numbers worked out by hand from them (ImageNet's
1,281,167 images, 8 processes). Models are built on the meta device: ResNet-50 at its real widths,
no memory, no initialization.
"""
import functools
import glob
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from ssl_lab.engine import setup_cfg, validate
from ssl_lab.engine.dry_run import compare_with_recipe, load_recipes, summarize

from conftest import REPO_ROOT, tiny_overrides

ROWS = load_recipes()
D2_PROJECT = os.path.join(REPO_ROOT, "projects", "Detectron2Transfer")
# Files that only complete a config through a _BASE_ chain: they do not build on their own.
PARTIAL_BASES = {
    "projects/EqCo/configs/ImageNet/Base-SimCLR-SGD.yaml",  # K comes from the file that includes it
    "projects/EqCo/configs/Shapes/Base-SimCLR-SGD.yaml",
    "projects/MSBReg/configs/Base-MSBReg.yaml",  # the method's keys, on top of a pretraining config
    "projects/MSBReg/configs/Base-Regularized.yaml",
}


def _all_configs(d2: bool):
    paths = glob.glob(os.path.join(REPO_ROOT, "configs", "**", "*.yaml"), recursive=True)
    paths += glob.glob(os.path.join(REPO_ROOT, "projects", "*", "configs", "**", "*.yaml"), recursive=True)
    rel = sorted(os.path.relpath(p, REPO_ROOT) for p in paths)
    return [p for p in rel if p.startswith("projects/Detectron2Transfer/") == d2 and p not in PARTIAL_BASES]


@functools.lru_cache(maxsize=None)
def _summary(config: str):
    """(resolved cfg, summary) of `config` at 8 processes: model, optimizer, schedule, hooks built."""
    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=[]))
    return summarize(cfg, world_size=8)


def _d2():
    pytest.importorskip("detectron2", reason="detectron2 not installed (make d2)")
    sys.path.insert(0, D2_PROJECT)
    try:
        import d2_transfer
    finally:
        sys.path.remove(D2_PROJECT)
    return d2_transfer


def _d2_cfg(config: str):
    from detectron2.config import get_cfg

    cfg = get_cfg()
    _d2().add_transfer_config(cfg)
    cfg.merge_from_file(os.path.join(REPO_ROOT, config))
    return cfg


def test_recipe_tables_cover_the_paper_rows():
    names = {row["name"] for row in ROWS}
    for needed in ["mocov1_r50_200ep", "mocov2_r50_200ep", "simclr_r50_200ep", "byol_r50_200ep",
                   "simo_r50_200ep_k16", "simo_r50_200ep_k256", "simo_r50_200ep_alpha65536", "simo_r50_800ep",
                   "simo_r50w2x_200ep", "simo_r50_100ep_momentum0", "simo_r50_100ep_shufflebn", "simo_lincls",
                   "mocov2_r50_200ep_k16_eqco", "mocov2_r50_200ep_n1024", "simclr_r50_200ep_k256_eqco",
                   "d2_fpn_1x_simo"]:
        assert needed in names
    for row in ROWS:
        assert os.path.isfile(os.path.join(REPO_ROOT, row["config"])), row["config"]
        assert row["expect"] and row["source"]


@pytest.mark.parametrize("row", [r for r in ROWS if "Detectron2Transfer" not in r["config"]], ids=lambda r: r["name"])
def test_shipped_config_equals_its_recipe_row(row):
    cfg, summary = _summary(row["config"])
    assert compare_with_recipe(row, cfg, summary) == []


@pytest.mark.parametrize("row", [r for r in ROWS if "Detectron2Transfer" in r["config"]], ids=lambda r: r["name"])
def test_detectron2_transfer_config_equals_its_recipe_row(row):
    assert compare_with_recipe(row, _d2_cfg(row["config"])) == []


def test_a_drifted_config_is_reported_key_by_key():
    row = next(r for r in ROWS if r["name"] == "simo_r50_200ep_k16")
    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, row["config"]),
                                    opts=["SOLVER.BASE_LR", "0.06", "SOLVER.EPOCHS", "100"]))
    cfg, summary = summarize(cfg, world_size=8)
    diffs = {key: (here, official) for key, here, official in compare_with_recipe(row, cfg, summary)}
    assert diffs == {"SOLVER.BASE_LR": (0.06, 0.03), "SOLVER.EPOCHS": (100, 200), "lr": (0.06, 0.03),
                     "max_iter": (500400, 1000800)}


@pytest.mark.parametrize("config", _all_configs(d2=False))
def test_every_config_builds_model_optimizer_schedule_and_hooks(config):
    cfg, summary = _summary(config)
    assert summary["max_iter"] > 0 and summary["params"] > 0
    assert summary["per_rank_batch"] * 8 == cfg.SOLVER.IMS_PER_BATCH
    assert "LRScheduler" in summary["hooks"]


@pytest.mark.parametrize("config", _all_configs(d2=False))
def test_every_config_passes_the_job_check_of_train_net(config, tmp_path):
    # What train_net.py runs before any process starts; registered builder functions (MSBReg's
    # "Regularized") as well as classes.
    validate(setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config),
                                       opts=["OUTPUT_DIR", str(tmp_path / "out")])), 8)


@pytest.mark.parametrize("config", _all_configs(d2=True))
def test_every_detectron2_config_builds_model_optimizer_and_schedule(config):
    d2 = _d2()
    cfg = _d2_cfg(config)
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        model = d2.Trainer.build_model(cfg)
    optimizer = d2.Trainer.build_optimizer(cfg, model)
    d2.Trainer.build_lr_scheduler(cfg, optimizer)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_resnet50_is_built_at_its_real_size():
    # torchvision's ResNet-50 has 25,557,032 parameters, 2,049,000 of them in the fc layer.
    _, summary = _summary("configs/ImageNet/mocov2_r50_200ep.yaml")
    assert summary["backbone_params"] == 25_557_032 - 2_049_000


def _train_net(*argv):
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "train_net.py"), *argv],
                          capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def test_dry_run_prints_the_resolved_run_and_its_recipe_row(tmp_path):
    out = tmp_path / "out"
    proc = _train_net("--config-file", "projects/SiMo/configs/r50_200ep_k256.yaml", "--num-gpus", "8", "--dry-run",
                      "OUTPUT_DIR", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for line in ["256 global, 32 per rank", "lr: 0.03 ", "5004 iterations per epoch, 1000800 in total, warmup 50040",
                 "negatives per query K: 255, alpha: 256", "recipe row 'simo_r50_200ep_k256'", "matches"]:
        assert line in text, line
    assert not out.exists()  # nothing written
    drifted = _train_net("--config-file", "projects/SiMo/configs/r50_200ep_k256.yaml", "--num-gpus", "8", "--dry-run",
                         "SOLVER.BASE_LR", "0.3")
    assert drifted.returncode == 0 and "differs in SOLVER.BASE_LR = 0.3 (official 0.03)" in drifted.stdout


def test_dry_run_of_a_broken_config_fails_with_the_real_runs_message(tmp_path):
    # SimCLR with K = 64 at a global batch of 16 (30 candidates): the EqCo hook refuses it at build time.
    opts = [*tiny_overrides(str(tmp_path / "data"), str(tmp_path / "run")), "SOLVER.IMS_PER_BATCH", "16"]
    config = ["--config-file", "projects/EqCo/configs/Shapes/simclr_r18_k64.yaml"]
    dry = _train_net(*config, "--dry-run", *opts)
    real = _train_net(*config, *opts)
    assert dry.returncode == real.returncode == 2
    message = [line for line in dry.stderr.splitlines() if line.startswith("ERROR")]
    assert len(message) == 1 and "largest valid value is 30" in message[0]
    assert message[0] in real.stderr.splitlines()


def test_byol_heads_are_the_official_mlp():
    # deepmind-research byol/utils/networks.py MLP: Linear(bias) -> BN -> ReLU -> Linear(no bias).
    from ssl_lab.modeling import build_model

    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, "configs/ImageNet/byol_r50_200ep.yaml"),
                                    opts=["MODEL.DEVICE", "meta"]))
    with torch.device("meta"):
        model = build_model(cfg)
    for head, in_dim in [(model.projector, 2048), (model.predictor, 256)]:
        first, bn, relu, last = head
        assert (first.in_features, first.out_features, last.out_features) == (in_dim, 4096, 256)
        assert first.bias is not None and last.bias is None
        assert isinstance(bn, torch.nn.modules.batchnorm._BatchNorm) and isinstance(relu, torch.nn.ReLU)


@pytest.mark.parametrize("config,opts,message", [
    ("configs/Shapes/simclr_r18.yaml", ["SOLVER.IMS_PER_BATCH", "16"],
     "NUM_NEGATIVES = 64 is more than the 30 candidates of SimCLR's 2N - 2 in-batch embeddings "
     "(N = SOLVER.IMS_PER_BATCH / SOLVER.GRAD_ACCUM_STEPS = 16 / 1); the largest valid value is 30"),
    ("configs/Shapes/mocov2_r18.yaml", ["MODEL.QUEUE.SIZE", "32"],
     "NUM_NEGATIVES = 64 is more than the 32 candidates of the queue (MODEL.QUEUE.SIZE = 32); "
     "the largest valid value is 32"),
])
def test_a_k_above_the_candidates_is_refused_at_build_time(config, opts, message):
    from ssl_lab.modeling import build_model

    sampled = ["MODEL.NEGATIVE_SAMPLER.NAME", "RandomNegatives", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "64"]
    cfg = setup_cfg(SimpleNamespace(config_file=os.path.join(REPO_ROOT, config), opts=[*opts, *sampled]))
    with pytest.raises(ValueError) as err:
        build_model(cfg)
    assert message in str(err.value)
