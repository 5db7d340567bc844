"""Start one process per device (GPU, or CPU process over gloo) on one or many machines.

Also runs unchanged under torchrun / SLURM srun: when their environment
variables are set, the current process joins the group they describe.

The launching process supervises its workers: SIGTERM or SIGINT (Ctrl-C) sent to it
reaches every worker, which saves a checkpoint and exits (143 / 130; see
hooks.PreemptionCheckpointer); when one worker fails, the others are stopped; a worker
whose launcher died (even by SIGKILL) stops itself the same way. No worker outlives it.
"""

import logging
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ssl_lab.config import ConfigError
from ssl_lab.utils.errors import UserError, debug_enabled, exit_on_user_error

__all__ = ["LaunchError", "check_launch", "launch", "find_free_port"]

logger = logging.getLogger(__name__)


class LaunchError(UserError, ValueError):
    """--num-gpus / --num-machines / --machine-rank / --dist-url do not describe a job."""


def check_launch(num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0, dist_url: str = "auto") -> None:
    """Refuse, before any process starts, a job shape that would wait forever at the rendezvous."""
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise LaunchError(f"--num-gpus {num_gpus_per_machine} --num-machines {num_machines}: both must be >= 1")
    if not 0 <= machine_rank < num_machines:
        raise LaunchError(
            f"--machine-rank {machine_rank} is not a machine of --num-machines {num_machines}; "
            f"number the machines 0 .. {num_machines - 1} (0 hosts --dist-url)"
        )
    if num_machines > 1 and dist_url == "auto":
        raise LaunchError("--dist-url auto works on one machine only; pass tcp://<machine 0>:<port>")


def _peer_lost(err: BaseException) -> bool:
    """Whether `err` is a collective failing because another process of the job died."""
    return isinstance(err, dist.DistError) or (
        isinstance(err, RuntimeError)
        and any(word in str(err) for word in ("gloo", "Connection closed by peer", "Connection reset by peer", "NCCL"))
    )


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _external_launcher_env():
    """(rank, world_size, local_rank) from torchrun or SLURM, or None."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env and "LOCAL_RANK" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"])
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1 and "MASTER_ADDR" in env:
        return int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0))
    return None


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def _init_process_group(dist_url: str, world_size: int, rank: int, local_rank: int, procs_per_machine: int):
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"--num-gpus asks for {procs_per_machine} processes per machine but only {torch.cuda.device_count()} GPUs are visible"
            )
        torch.cuda.set_device(local_rank)
    else:  # share the CPU cores between the processes of this machine
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // procs_per_machine))
    dist.init_process_group(_backend(), init_method=dist_url, world_size=world_size, rank=rank, timeout=timedelta(minutes=30))
    dist.barrier()


def _stop_when_orphaned(parent_pid: int, poll_s: float = 1.0) -> None:
    """SIGTERM this process (checkpoint, then exit) once its launcher `parent_pid` is gone."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker(local_rank, main_func, world_size, procs_per_machine, machine_rank, dist_url, args, parent_pid):
    _stop_when_orphaned(parent_pid)
    rank = machine_rank * procs_per_machine + local_rank
    with exit_on_user_error(where=f"rank {rank}"):
        _init_process_group(dist_url, world_size, rank, local_rank, procs_per_machine)
        try:
            main_func(*args)
        except Exception as err:
            if debug_enabled() or not _peer_lost(err):
                raise
            # the launcher reports the process that died; its collective's traceback says nothing more
            reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            print(f"ERROR (rank {rank}): another process of the job died, so this one stops ({reason})", file=sys.stderr)
            sys.exit(1)
        finally:
            dist.destroy_process_group()


def _stop(procs, grace_s: float = 60.0) -> None:
    """SIGTERM the live `procs` (they checkpoint and exit), SIGKILL what is left after `grace_s`."""
    for p in procs:
        if p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _supervise(procs) -> None:
    """Wait for every worker; forward SIGTERM/SIGINT to them; stop all when one fails.

    Exits with 128 + signal after a forwarded signal, or with the first failed worker's status.
    """
    received = []

    def forward(signum, frame):
        received.append(signum)
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = list(procs)
        while running:
            multiprocessing.connection.wait([p.sentinel for p in running])
            for p in [p for p in running if p.exitcode is not None]:
                running.remove(p)
                if p.exitcode != 0 and not received:
                    how = f"was killed by {signal.Signals(-p.exitcode).name}" if p.exitcode < 0 else f"exited with status {p.exitcode}"
                    logger.error(f"Worker {procs.index(p)} {how}; stopping the others")
                    _stop(running)
                    sys.exit(p.exitcode if p.exitcode > 0 else 128 - p.exitcode)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        sys.exit(128 + received[0])


def launch(main_func, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0, dist_url: str = "auto", args=()):
    """Run `main_func(*args)` in every process of the job.

    num_gpus_per_machine: processes per machine (one per GPU; on a machine without
        GPUs, that many CPU processes communicating over gloo).
    dist_url: "auto" (single machine, a free local port) or "tcp://host:port" of machine 0.
    """
    external = _external_launcher_env()
    if external is not None:
        rank, world_size, local_rank = external
        procs = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("SLURM_NTASKS_PER_NODE", world_size)))
        if "MASTER_PORT" not in os.environ:
            os.environ["MASTER_PORT"] = "29500"
        _init_process_group("env://", world_size, rank, local_rank, procs)
        try:
            return main_func(*args)
        finally:
            dist.destroy_process_group()
    check_launch(num_gpus_per_machine, num_machines, machine_rank, dist_url)
    world_size = num_machines * num_gpus_per_machine
    if world_size == 1:
        return main_func(*args)
    if dist_url == "auto":
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    context = mp.get_context("spawn")
    procs = [
        context.Process(
            target=_worker, daemon=False, args=(i, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, os.getpid())
        )
        for i in range(num_gpus_per_machine)
    ]
    for p in procs:
        p.start()
    _supervise(procs)
