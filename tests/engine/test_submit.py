"""tools/submit.py through submitit's local executor: a 2-process job signalled mid-run (SLURM's
pre-timeout/preemption signal) checkpoints, requeues itself and ends bitwise equal to an
uninterrupted run of train_net.py."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from submitit.core.utils import pickle_load
from test_reliability import _env, _final_weights, _losses, toy_run_overrides

from conftest import REPO_ROOT

MAX_ITER = 16


def _overrides(shapes_root, out):
    return toy_run_overrides(shapes_root, out, MAX_ITER, checkpoint_period=100)


CONFIG = os.path.join(REPO_ROOT, "configs/Shapes/mocov2_r18.yaml")


def _children(pid: int) -> list:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


@pytest.mark.slow
def test_signalled_two_process_job_requeues_and_matches_an_uninterrupted_run(shapes_root, tmp_path):
    reference, out, job_dir = (str(tmp_path / name) for name in ("reference", "submitted", "jobs"))
    subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools/train_net.py"),
            "--num-gpus",
            "2",
            "--config-file",
            CONFIG,
            *_overrides(shapes_root, reference),
        ],
        env=_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    with open(tmp_path / "submit.out", "w") as stdout:  # not a pipe: the job's controller inherits it and lives on
        subprocess.run(
            [
                sys.executable,
                os.path.join(REPO_ROOT, "tools/submit.py"),
                "--config-file",
                CONFIG,
                "--nodes",
                "1",
                "--gpus-per-node",
                "2",
                "--partition",
                "",
                "--timeout",
                "10",
                "--cluster",
                "local",
                "--job-dir",
                job_dir,
                *_overrides(shapes_root, out),
            ],
            env=_env(),
            check=True,
            stdout=stdout,
            timeout=120,
        )
    submitted = (tmp_path / "submit.out").read_text()
    controller = int(re.search(r"Submitted job (\d+)", submitted).group(1))  # local job id: its pid
    deadline = time.time() + 240
    while not (os.path.exists(os.path.join(out, "metrics.json")) and 2 in _losses(out)):
        assert time.time() < deadline, "the job did not reach iteration 2"
        time.sleep(0.05)
    (task,) = _children(controller)
    os.kill(task, signal.SIGUSR2)  # what SLURM sends the task before the time limit and on preemption
    result = os.path.join(job_dir, f"{controller}_0_result.pkl")
    while not os.path.exists(result):
        assert time.time() < deadline, "the requeued job did not finish"
        time.sleep(0.2)
    assert pickle_load(result)[0] == "success"
    with open(os.path.join(job_dir, f"{controller}_0_log.out")) as f:
        assert "Requeued job" in f.read()
    with open(os.path.join(out, "log.txt")) as f:
        resumed_at = [int(i) for i in re.findall(r"Resuming at iteration (\d+)", f.read())]
    assert len(resumed_at) == 1 and 3 <= resumed_at[0] < MAX_ITER  # checkpointed after the signal, mid-run
    assert _losses(out) == _losses(reference)
    expected = _final_weights(reference)
    for key, value in _final_weights(out).items():
        assert torch.equal(value, expected[key]), key


def test_bad_config_is_refused_before_submission(shapes_root, tmp_path):
    job_dir = str(tmp_path / "jobs")
    refused = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "tools/submit.py"),
            "--config-file",
            CONFIG,
            "--nodes",
            "1",
            "--gpus-per-node",
            "3",
            "--cluster",
            "local",
            "--job-dir",
            job_dir,
            *_overrides(shapes_root, str(tmp_path / "out")),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "divisible by the number of processes (3)" in refused.stderr
    assert not os.path.exists(job_dir)
