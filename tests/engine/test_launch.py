"""The launcher when a worker is killed by a signal: the others are stopped, the job's status
says so, and a worker whose collective lost its peer prints one line, not a gloo traceback."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch.distributed as dist

from ssl_lab.engine.launch import LaunchError, check_launch

from conftest import REPO_ROOT


def _victim_and_survivor(mode: str, pid_file: str):
    """Rank 1 SIGKILLs itself. Rank 0 either sleeps (busy outside any collective: only the launcher
    can stop it) or waits in all_reduce, ignoring SIGTERM as a worker saving a checkpoint does."""
    import torch

    if dist.get_rank() == 1:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    if mode == "sleep":
        while True:
            time.sleep(0.1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tensor = torch.zeros(8)
    while True:
        dist.all_reduce(tensor)


def _launch(mode, tmp_path):
    pid_file = str(tmp_path / "rank0.pid")
    code = (
        f"import sys; sys.path[:0] = {[REPO_ROOT, os.path.join(REPO_ROOT, 'tests'), os.path.dirname(__file__)]!r}\n"
        "from ssl_lab.engine.launch import launch\n"
        "from test_launch import _victim_and_survivor\n"
        f"launch(_victim_and_survivor, 2, args=({mode!r}, {pid_file!r}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SSL_LAB_DEBUG")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=env)
    with open(pid_file) as f:
        return result, int(f.read())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sleep", "collective"])
def test_a_sigkilled_worker_stops_the_job(mode, tmp_path):
    result, survivor = _launch(mode, tmp_path)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    assert _gone(survivor)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Worker 1 was killed by SIGKILL; stopping the others" in result.stderr
    assert "Traceback" not in result.stderr and len(lines) <= 15, result.stderr
    if mode == "collective":  # rank 0 saw its peer vanish before the launcher stopped it
        assert "ERROR (rank 0): another process of the job died" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        ((1, 2, 2), "--machine-rank 2 is not a machine of --num-machines 2; number the machines 0 .. 1"),
        ((1, 2, -1), "--machine-rank -1 is not a machine"),
        ((0, 1, 0), "--num-gpus 0 --num-machines 1: both must be >= 1"),
        ((1, 0, 0), "--num-gpus 1 --num-machines 0"),
        ((1, 2, 1, "auto"), "--dist-url auto works on one machine only"),
    ],
)
def test_job_shapes_that_would_wait_forever_are_refused(args, message):
    with pytest.raises(LaunchError, match=message.replace(".", r"\.")):
        check_launch(*args)
    check_launch(1, 2, 1, "tcp://10.0.0.1:1234")  # the last machine of two, the first valid rank at that edge
    check_launch(1, 2, 0, "tcp://10.0.0.1:1234")
