"""`make demo`'s script end to end at toy size (pretraining, kNN and linear evaluation)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow
def test_demo_reports_knn_and_linear_accuracy_and_resumes(shapes_root, tmp_path):
    out = str(tmp_path / "demo")
    cmd = [sys.executable, os.path.join(REPO_ROOT, "tools", "demo.py"), "--output-dir", out, "--skip-detection",
           "DATASETS.ROOT", shapes_root, "DATASETS.SHAPES.NUM_TRAIN", "64", "DATASETS.SHAPES.NUM_VAL", "32",
           "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "16", "TEST.EVAL_PERIOD", "0",
           "MODEL.PROJECTOR.HIDDEN_DIM", "64", "DATALOADER.NUM_WORKERS", "0", "TEST.IMS_PER_BATCH", "32"]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "kNN top-1 (%)" in first.stdout and "linear top-1 (%)" in first.stdout
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for key in ("knn_random_init", "knn_pretrained", "linear_random_init", "linear_pretrained"):
        correct = results[key] * 32 / 100  # accuracies over the 32 val images
        assert correct == pytest.approx(round(correct)), (key, results[key])
    with open(os.path.join(out, "pretrain", "metrics.json")) as f:
        knn = [(r["iteration"], r["knn/top1"]) for r in map(json.loads, f) if "knn/top1" in r]
    assert (results["knn_random_init"], results["knn_pretrained"]) == (knn[0][1], knn[-1][1]) and knn[0][0] == 0
    assert os.path.getsize(os.path.join(out, "pretrain_metrics.png")) > 10_000
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "Nothing to do" in again.stdout + again.stderr
