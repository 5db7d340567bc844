"""projects/example_project is a working template: a copy of it, its method renamed as a user would,
trains through tools/train_net.py with that method."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, tiny_overrides


def _copy_and_rename(project, renames: dict) -> None:
    """Copy the template to `project` and apply `renames` to every text file in it."""
    shutil.copytree(os.path.join(REPO_ROOT, "projects", "example_project"), project, ignore=shutil.ignore_patterns("__pycache__"))
    for folder, _, files in os.walk(project):
        for name in files:
            path = os.path.join(folder, name)
            with open(path) as f:
                text = f.read()
            for old, new in renames.items():
                text = text.replace(old, new)
            with open(path, "w") as f:
                f.write(text)


@pytest.mark.slow
def test_a_copy_of_the_example_project_trains_its_own_method(shapes_root, tmp_path):
    """The copy sits where a user's project would (projects/<name> beside configs/); its method
    and loss are renamed, so the names in metrics.json can only come from the copy's code."""
    _copy_and_rename(tmp_path / "projects" / "example_project", {"TargetlessBYOL": "MyMethod", "loss_targetless": "loss_mine"})
    os.symlink(os.path.join(REPO_ROOT, "configs"), tmp_path / "configs")
    out = str(tmp_path / "out")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    env.pop("SSL_LAB_DEBUG", None)
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools", "train_net.py"),
            "--config-file",
            "projects/example_project/configs/shapes_r18.yaml",
            *tiny_overrides(shapes_root, out),
            "SOLVER.MAX_ITER",
            "2",
            "DATASETS.TEST",
            "()",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(out, "metrics.json")) as f:
        losses = [record for record in map(json.loads, f) if "total_loss" in record]
    assert [record["iteration"] for record in losses] == [0, 1]
    assert all(record["loss_mine"] == record["total_loss"] for record in losses)
