"""`train_net.py --dry-run` prints the numbers a run uses: checked against values worked out by hand."""

import os
import runpy

import pytest

from conftest import REPO_ROOT

TRAIN_NET = os.path.join(REPO_ROOT, "tools", "train_net.py")

# (config, KEY VALUEs, lines the report must hold). Worked out by hand, 8 processes, 4 accumulation steps:
# the negatives come from one global micro-batch of IMS_PER_BATCH / 4 images.
CASES = {
    # SimCLR: 4096 / 4 = 1024 images per micro-batch, 2 * 1024 - 2 = 2046 other views; lr 0.3 x 4096 / 256.
    "simclr": (
        "configs/ImageNet/simclr_r50_200ep.yaml",
        [],
        ["  batch: 4096 global, 512 per rank", "  lr: 4.8 (0.3 x 4096/256)", "  negatives per query K: 2046, alpha: 2046"],
    ),
    # SiMo K = 256 takes all N - 1 other keys: 256 / 4 - 1 = 63; EqCo's alpha stays 256.
    "simo": (
        "projects/SiMo/configs/r50_200ep_k256.yaml",
        [],
        ["  batch: 256 global, 32 per rank", "  lr: 0.03 (0.03 x 256/256)", "  negatives per query K: 63, alpha: 256"],
    ),
    # MoCo: the queue, whatever the batch.
    "mocov2": (
        "configs/ImageNet/mocov2_r50_200ep.yaml",
        [],
        ["  batch: 256 global, 32 per rank", "  negatives per query K: 65536, alpha: 65536"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_prints_k_lr_and_batch_per_rank_under_gradient_accumulation(case, tmp_path, capsys):
    config, opts, expected = CASES[case]
    runpy.run_path(TRAIN_NET)["run"](
        [
            "--dry-run",
            "--num-gpus",
            "8",
            "--config-file",
            os.path.join(REPO_ROOT, config),
            "SOLVER.GRAD_ACCUM_STEPS",
            "4",
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            *opts,
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    for line in expected:
        assert any(printed.startswith(line) for printed in lines), (line, lines)
    assert not os.path.exists(tmp_path / "out")  # a dry run writes nothing
