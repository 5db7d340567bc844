"""tools/benchmark.py at toy size: it runs and reports every figure (timings are not asserted)."""

import importlib.util
import json
import os
import statistics

import pytest
import torch

from ssl_lab.modeling import build_model
from ssl_lab.solver import build_optimizer

from conftest import REPO_ROOT, tiny_model_and_data

RATES = [
    "data_images_per_s",
    "data_images_per_s_per_worker",
    "uint8_loader_images_per_s",
    "batched_aug_images_per_s",
    "train_images_per_s",
    "bare_images_per_s",
    "train_step_s",
    "bare_step_s",
    "overhead_ratio",
    "overhead_ratio_mean",
]


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", os.path.join(REPO_ROOT, "tools", "benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)  # the runs below use --threads 1


def _toy_args(shapes_root):
    return [*tiny_model_and_data(shapes_root), "DATALOADER.NUM_WORKERS", "0"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,flags",
    [
        ("mocov2_r18", []),
        ("simclr_r18", []),
        ("byol_r18", ["--amp", "--channels-last", "--grad-accum", "2"]),
    ],
)
def test_benchmark_writes_every_field(benchmark, shapes_root, tmp_path, capsys, name, flags):
    output = tmp_path / "bench" / "result.json"
    argv = [
        "--config-file",
        os.path.join(REPO_ROOT, f"configs/Shapes/{name}.yaml"),
        "--iters",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--output",
        str(output),
        *flags,
        *_toy_args(shapes_root),
    ]
    returned = benchmark.main(argv)
    with open(output) as f:
        result = json.load(f)
    assert result == json.loads(json.dumps(returned))
    # Timings are measured, not pinned; every derived field follows from them by its definition.
    assert set(RATES) <= result.keys()
    train, bare = result["train_step_times_s"], result["bare_step_times_s"]
    assert len(train) == len(bare) == 2
    assert result["train_step_s"] == pytest.approx(statistics.median(train))
    assert result["bare_step_s"] == pytest.approx(statistics.median(bare))
    assert result["train_images_per_s"] == pytest.approx(16 / result["train_step_s"])
    assert result["bare_images_per_s"] == pytest.approx(16 / result["bare_step_s"])
    assert result["overhead_ratio"] == pytest.approx(result["train_step_s"] / result["bare_step_s"])
    assert result["overhead_ratio_mean"] == pytest.approx(sum(train) / sum(bare))
    ratios = [a / b for a, b in zip(train, bare)]
    quartiles = statistics.quantiles(ratios, n=4)
    assert result["overhead_ratio_quartiles"] == pytest.approx([quartiles[0], quartiles[2]])
    assert result["data_images_per_s_per_worker"] == pytest.approx(result["data_images_per_s"] / max(result["num_workers"], 1))
    assert result["batch"] == 16 and result["image_size"] == 32 and result["num_views"] == 2
    assert result["device"] == "cpu" and result["torch_version"] == torch.__version__
    assert result["config"].endswith(f"{name}.yaml")
    assert result["queue_size"] == (64 if name == "mocov2_r18" else 0)
    if flags:
        assert result["amp"] == "bfloat16" and result["channels_last"] and result["grad_accum_steps"] == 2
    assert "overhead ratio" in capsys.readouterr().out


@pytest.mark.slow
def test_bare_loop_trains_like_the_trainer(benchmark, shapes_root, tmp_path):
    """The bare loop is a real training step: it changes the weights and the EMA copy."""
    args = benchmark.argument_parser().parse_args(
        ["--config-file", os.path.join(REPO_ROOT, "configs/Shapes/byol_r18.yaml"), *_toy_args(shapes_root)]
    )
    cfg = benchmark.prepare_cfg(args)
    views = [torch.randn(16, 3, 32, 32) for _ in range(2)]
    model = build_model(cfg)
    bare = benchmark.BareLoop(cfg, model, build_optimizer(cfg, model), [(views, torch.zeros(16, dtype=torch.long))], torch.device("cpu"))
    before = {k: v.clone() for k, v in bare.model.state_dict().items()}
    bare.step()
    after = bare.model.state_dict()
    for prefix in ("backbone.", "momentum_backbone."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix


def test_lightly_peer_gets_the_same_work_as_ssl_lab(shapes_root):
    """benchmark_lightly.py hands lightly's process (which cannot import ssl_lab) the settings of
    the Shapes MoCo v2 config, as that YAML and its bases write them, and the MoCo v2 recipe."""
    import sys

    sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
    import benchmark_lightly

    args = benchmark_lightly.argument_parser().parse_args(
        [
            "--config-file",
            os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"),
            "DATASETS.ROOT",
            shapes_root,
            "DATASETS.SHAPES.NUM_TRAIN",
            "64",
            "DATASETS.SHAPES.NUM_VAL",
            "32",
            "DATASETS.SHAPES.IMAGE_SIZE",
            "32",
        ]
    )
    spec = benchmark_lightly.lightly_spec(args)
    assert {
        k: spec[k]
        for k in ("batch", "crop_size", "min_scale", "workers", "depth", "hidden_dim", "out_dim", "temperature", "queue", "ema", "lr")
    } == {
        "batch": 128,
        "crop_size": 64,
        "min_scale": 0.2,
        "workers": 1,
        "depth": 18,
        "hidden_dim": 512,
        "out_dim": 128,
        "temperature": 0.2,
        "queue": 1024,
        "ema": 0.99,
        "lr": 0.06,
    }
    assert len(os.listdir(spec["image_dir"])) == 64  # the training images themselves
    assert benchmark_lightly.ssl_lab_cfg(args, batched=False).INPUT.AUGMENTATION == "MoCoV2"
    assert benchmark_lightly.ssl_lab_cfg(args, batched=True).INPUT.BATCHED_AUGMENTATION


def test_augmentation_ops_times_each_op_of_the_recipe_in_order(benchmark, shapes_root, tmp_path, capsys):
    """--augmentation-ops: one row per op of the MoCo v2 view (the recipe of transforms.MoCoV2: crop, jitter,
    grayscale, blur, flip, then normalize) and one for the whole module, each the minimum of its timed runs."""
    output = tmp_path / "ops.json"
    returned = benchmark.main(
        [
            "--config-file",
            os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml"),
            "--augmentation-ops",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--output",
            str(output),
            *_toy_args(shapes_root),
            "INPUT.AUGMENTATION",
            "MoCoV2",
        ]
    )
    with open(output) as f:
        result = json.load(f)
    assert result == json.loads(json.dumps(returned))
    assert list(result["ops_ms"]) == [
        "BatchedRandomResizedCrop",
        "BatchedColorJitter",
        "BatchedGrayscale",
        "BatchedGaussianBlur",
        "BatchedHorizontalFlip",
        "BatchedNormalize",
        "whole module (2 views)",
    ]
    for op, times in result["ops_times_s"].items():
        assert len(times) == 3 and result["ops_ms"][op] == pytest.approx(1000 * min(times)), op
    assert result["batch"] == 16 and result["threads"] == 1 and result["augmentation"] == "MoCoV2"
    assert set(result["provenance"]) == {"commit", "dirty", "torch", "machine", "date"}
    printed = capsys.readouterr().out
    assert all(name in printed for name in result["ops_ms"])
