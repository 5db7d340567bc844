"""The used-by command, `train_net.py --config-file projects/SiMo/configs/r50_200ep.yaml --num-gpus 8`,
simulated as 8 CPU processes over gloo: the real recipe (ResNet-50, SyncBN, K = 16, alpha = 256,
global batch 256 = 32 per rank) on a generated 32 px ImageFolder, with kNN evaluation, a
checkpoint and --resume.

Overridden: the image size (INPUT.CROP_SIZE / TEST_RESIZE 32), the iteration count
(SOLVER.MAX_ITER 2, then 3 with --resume), where data and outputs live, and
DATALOADER.NUM_WORKERS 0: the recipe's 8 loader workers per rank would be 64 more processes on
this 2-core machine, and loading is not what this simulates.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_lab.engine import DefaultTrainer, HookBase, default_argument_parser, default_setup, launch, setup_cfg
from ssl_lab.utils import comm
from ssl_lab.utils.comm import unwrap_model

from conftest import REPO_ROOT

CONFIG = os.path.join(REPO_ROOT, "projects/SiMo/configs/r50_200ep.yaml")


def _image_folder(root, split, per_class):
    rng = np.random.default_rng(0 if split == "train" else 1)
    for c in range(4):
        folder = os.path.join(root, "imagenet", split, f"n{c:08d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 64, (32, 32, 3)) + np.array([60 * c, 255 - 60 * c, 128])
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i}.png"))


class _Probe(HookBase):
    """Records, per rank, what the run did: iterations, the LR, each query's negatives and the BN statistics."""

    def __init__(self, out):
        self.out, self.iterations, self.negatives = out, [], []

    def before_train(self):
        self.lr = self.trainer.optimizer.param_groups[0]["lr"]
        sampler = unwrap_model(self.trainer.model).negative_sampler
        sampler.register_forward_hook(lambda m, inputs, output: self.negatives.append((inputs[0], output)))

    def after_step(self):
        self.iterations.append(self.trainer.iter)

    def after_train(self):
        model = unwrap_model(self.trainer.model)
        torch.save(
            {
                "world_size": comm.get_world_size(),
                "iterations": self.iterations,
                "lr": self.lr,
                "negatives": self.negatives,
                "knn": self.trainer.storage.latest().get("knn/top1"),
                "bn": {k: v for k, v in model.state_dict().items() if "running_" in k},
            },
            f"{self.out}.rank{comm.get_rank()}.pt",
        )


def _main(args, probe):
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = DefaultTrainer(cfg)
    trainer.register_hooks([_Probe(probe)])
    trainer.resume_or_load(resume=args.resume, allow_config_change=args.allow_config_change)
    trainer.train()


def _run(tmp_path, max_iter, *flags):
    argv = [
        "--config-file",
        CONFIG,
        "--num-gpus",
        "8",
        *flags,
        "OUTPUT_DIR",
        str(tmp_path / "out"),
        "DATASETS.ROOT",
        str(tmp_path / "data"),
        "INPUT.CROP_SIZE",
        "32",
        "INPUT.TEST_RESIZE",
        "32",
        "SOLVER.MAX_ITER",
        str(max_iter),
        "DATALOADER.NUM_WORKERS",
        "0",
    ]
    args = default_argument_parser().parse_args(argv)
    probe = str(tmp_path / f"probe{max_iter}")
    launch(_main, args.num_gpus, args=(args, probe))
    return [torch.load(f"{probe}.rank{r}.pt", weights_only=False) for r in range(8)]


@pytest.mark.slow
def test_used_by_command_on_8_simulated_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _image_folder(str(tmp_path / "data"), "train", 64)  # 256 images: one global batch
    _image_folder(str(tmp_path / "data"), "val", 8)
    first = _run(tmp_path, 2)
    assert [p["world_size"] for p in first] == [8] * 8 and all(p["iterations"] == [0, 1] for p in first)
    assert all(p["lr"] == 0.03 * 256 / 256 for p in first)  # iteration 0: no warmup at 2 iterations
    for p in first:
        for candidates, negatives in p["negatives"]:
            # 32 queries per rank, each against the 255 other keys of the global batch, K = 16 kept
            assert candidates.shape == (32, 255) and negatives.shape == (32, 16)
            for row in range(32):  # each negative is one of that query's candidates
                assert torch.isin(negatives[row], candidates[row]).all()
    for name, value in first[0]["bn"].items():  # SyncBN: every rank has the same global statistics
        for p in first[1:]:
            assert torch.equal(p["bn"][name], value), name
    changed = first[0]["bn"]["backbone.bn1.running_mean"]
    assert changed.abs().sum() > 0  # the statistics moved from their zero init
    knn = [p["knn"] for p in first]  # (top-1, iteration): the final evaluation, the same on every rank
    assert knn[0][1] == 2 and knn == [knn[0]] * 8
    correct = knn[0][0] * 32 / 100  # a whole number of the 32 validation images of all ranks together
    assert correct == pytest.approx(round(correct))
    resumed = _run(tmp_path, 3, "--resume", "--allow-config-change")  # one more iteration than the saved run
    assert all(p["iterations"] == [2] for p in resumed)  # continues at the iteration after the checkpoint


@pytest.mark.parametrize(
    "config, flags, message",
    [
        (CONFIG, ["--num-gpus", "3"], "SOLVER.IMS_PER_BATCH (256) must be divisible by the number of processes (3)"),
        # SiMo caps K to the other keys as the official code; SimCLR's sampled K is refused above 2N - 2
        (
            os.path.join(REPO_ROOT, "projects/EqCo/configs/ImageNet/simclr_r50_200ep_k16.yaml"),
            ["--num-gpus", "8", "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES", "600"],
            "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES = 600 is more than the 510 candidates",
        ),
    ],
)
def test_a_job_that_does_not_fit_is_refused_before_any_process_starts(tmp_path, config, flags, message):
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools", "train_net.py"),
            "--config-file",
            config,
            *flags[:2],
            "OUTPUT_DIR",
            str(out),
            *flags[2:],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    assert done.returncode == 2
    assert f"ERROR: {message}" in done.stderr and "Traceback" not in done.stderr
    assert "World size" not in done.stdout + done.stderr and not out.exists()  # no process, no file
